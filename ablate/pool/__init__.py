"""Dialogue pools: import (validate, label, fingerprint) and open memory-mapped Arrow pools.

`import_pool(ImportRequest(...))` writes a pool folder; `open_pool(folder)` opens one.
Modules: `request` (what to import), `readers` (source formats), `records` (record layouts),
`labels` (label rules), `checks` (per-record validation), `writer` (Arrow + manifest),
`importer` (the import, step by step), `store` (an imported pool on disk).
"""

from __future__ import annotations

from ablate.pool.importer import ImportProgress, import_pool
from ablate.pool.items import InvalidRecord
from ablate.pool.request import (
    ImportRequest,
    Source,
    parse_image_roots,
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
    "ImportProgress",
    "ImportRequest",
    "InvalidRecord",
    "Pool",
    "PoolManifest",
    "Source",
    "import_pool",
    "open_pool",
    "parse_image_roots",
    "parse_source",
    "parse_turns",
    "show_pool",
    "task_type_of",
]
