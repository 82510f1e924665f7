"""Seeds a trial can take: checked when the job (or `ablate propose --seeds`) is read, not when
every trial of a sweep fails on them."""

from __future__ import annotations

from collections.abc import Iterable

from ablate.errors import UserError

#: transformers' `set_seed` seeds numpy, whose legacy seeding takes 0..2**32 - 1 only.
SEED_MAX = 2**32 - 1


def check_seeds(seeds: dict[str, Iterable[int]], src: str) -> None:
    """Every seed under each key (`design.seeds`, `seed`, `--seeds`) lies in 0..SEED_MAX."""
    for key, values in seeds.items():
        for value in values:
            if isinstance(value, bool) or not 0 <= value <= SEED_MAX:
                raise UserError(
                    f"{src}: `{key}` has the seed {value!r}; seeds are whole numbers from 0 to "
                    f"{SEED_MAX} (2**32 - 1, numpy's range)"
                )
