"""Dialogue pools: import (validate, label, fingerprint) and open memory-mapped Arrow pools.

`import_pool(ImportRequest(...))` writes a pool folder; `open_pool(folder)` opens one.
"""

from __future__ import annotations

from ablate.pool.importer import (
    ImportRequest,
    InvalidRecord,
    Source,
    import_pool,
    parse_source,
    parse_turns,
)
from ablate.pool.store import (
    BASE_SCHEMA,
    MANIFEST_FILE,
    POOL_FILE,
    SKIPPED_FILE,
    TASK_TYPE,
    Pool,
    PoolManifest,
    open_pool,
    show_pool,
    task_type_of,
)

__all__ = [
    "BASE_SCHEMA",
    "MANIFEST_FILE",
    "POOL_FILE",
    "SKIPPED_FILE",
    "TASK_TYPE",
    "ImportRequest",
    "InvalidRecord",
    "Pool",
    "PoolManifest",
    "Source",
    "import_pool",
    "open_pool",
    "parse_source",
    "parse_turns",
    "show_pool",
    "task_type_of",
]
