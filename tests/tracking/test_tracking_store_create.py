"""A new SQLite tracking store is made whole or not at all (a driver killed in its first seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ablate.tracking.client import mlflow_client

#: A driver killed (os._exit, as by kill -9) among MLflow's schema migrations of a new store,
#: right after a migration's third ALTER TABLE: SQLite commits each DDL statement at once, while
#: the migration's version stamp is still uncommitted, so the store is neither old nor new.
KILLED_MID_MIGRATION = """
import os, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

altered = []

@event.listens_for(Engine, "after_cursor_execute")
def after(conn, cursor, statement, *args):
    if statement.lstrip().upper().startswith("ALTER TABLE"):
        altered.append(statement)
        if len(altered) == 3:
            os._exit(137)

from ablate.tracking.client import mlflow_client
mlflow_client("sqlite:///" + sys.argv[1])
"""


def test_a_driver_killed_mid_migration_leaves_a_store_the_next_one_opens(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_MIGRATION, str(db)], capture_output=True, text=True
    )
    assert killed.returncode == 137, killed.stderr[-2000:]
    # before: the half-migrated store was `mlflow.db` itself, and this open (every later one)
    # failed: "table _alembic_tmp_metrics already exists" (or "duplicate column name: step")
    client = mlflow_client(f"sqlite:///{db}")  # the next driver
    assert [e.name for e in client.search_experiments()] == ["Default"]
    # the dead driver's half-made file and its -journal are gone (-wal, -shm: SQLite's WAL mode)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["mlflow.db", "mlflow.db-shm", "mlflow.db-wal"]
    exp = client.create_experiment("s")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "score", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"score": 0.5}
