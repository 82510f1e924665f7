"""The sim landscapes, one module each; every module here registers itself in `LANDSCAPES`
(`ablate.objectives.sim_landscape`) when the registry is first read.

The built-ins are imported here only to fix their order (the order of the docs and of the
benchmark tables); a new landscape needs no line here.
"""

from ablate.objectives.landscapes import less_is_more, peaked, harmful, synergy  # noqa: F401, I001
