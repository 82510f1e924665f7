"""Mixtures: proportions over task types + volume + seed -> a deterministic selection of pool rows.

Only re-exports: the mixture file (`spec`), rows per type and validation (`plan`), the selection
(`select`), balance measures (`balance`), `ablate mixture show` (`show`).
"""

from ablate.mixture.balance import kl_to_uniform, min_max_ratio, normalized_entropy
from ablate.mixture.heldout import held_rows, heldout_positions, manifest_without
from ablate.mixture.plan import (
    Cell,
    apply_min_share,
    beyond_the_pool,
    max_volume,
    plan,
    repeat_cap,
    resolve_proportions,
    rows_per_type,
    validate,
    volume_rows,
)
from ablate.mixture.select import Selection, check_out_path, materialize, type_draw
from ablate.mixture.show import mixture_summary
from ablate.mixture.spec import (
    SUM_TOLERANCE,
    Mixture,
    Nested,
    check_mixture,
    load_mixture,
    with_within,
)

__all__ = [
    "SUM_TOLERANCE",
    "Cell",
    "Mixture",
    "Nested",
    "Selection",
    "apply_min_share",
    "beyond_the_pool",
    "check_mixture",
    "check_out_path",
    "held_rows",
    "heldout_positions",
    "kl_to_uniform",
    "load_mixture",
    "manifest_without",
    "materialize",
    "max_volume",
    "min_max_ratio",
    "mixture_summary",
    "normalized_entropy",
    "plan",
    "repeat_cap",
    "resolve_proportions",
    "rows_per_type",
    "type_draw",
    "validate",
    "volume_rows",
    "with_within",
]
