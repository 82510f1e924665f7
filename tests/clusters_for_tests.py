"""The real services cluster tests use: the local PostgreSQL, and a Ray cluster of fake nodes
(`ray.cluster_utils.Cluster`) whose head takes no trial, so only the nodes a test adds do."""

from __future__ import annotations

import os
from typing import Any

POSTGRES = os.environ.get("ABLATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
#: Object store of every fake node: trials return small results.
NODE_STORE = 80 * 1024**2


def postgres_ready() -> bool:
    """Whether the PostgreSQL of `POSTGRES` answers (the tests that need it skip otherwise)."""
    try:
        import psycopg2

        psycopg2.connect(POSTGRES, connect_timeout=3).close()
        return True
    except Exception:
        return False


def empty_head_cluster(**head: Any) -> Any:
    """A local Ray cluster whose head has no CPUs (no dashboard); `head` adds head options
    (`temp_dir`, ...). Add nodes with `cluster.add_node(..., object_store_memory=NODE_STORE)`."""
    from ray.cluster_utils import Cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    options = {"num_cpus": 0, "object_store_memory": NODE_STORE, "include_dashboard": False}
    return Cluster(initialize_head=True, connect=False, head_node_args={**options, **head})
