"""Review q, finding 12: the report's forked children end by SIGTERM without a traceback, and
`--metric` with a typo gets a did-you-mean."""

from __future__ import annotations


def _sleep(conn: object) -> None:
    import time

    time.sleep(30)


def test_a_stopped_report_child_ends_by_sigterm_without_a_traceback() -> None:
    """q#12: `report --metric scor` printed "Process ForkProcess-1: Traceback ...
    ablate.errors.Terminated" from a child `Child.stop` terminated: the child had the parent's
    SIGTERM handler, so the signal raised inside it instead of ending it."""
    import signal

    from ablate.analysis.forked import Child, can_fork
    from ablate.errors import stop_on_sigterm

    if not can_fork():
        return
    previous = stop_on_sigterm()
    try:
        child = Child(_sleep)
        child.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert child.proc.exitcode == -signal.SIGTERM


def test_a_metric_typo_gets_a_did_you_mean() -> None:
    """q#12: `report --metric scor` listed the metrics but did not point at `score`."""
    import pandas as pd

    from ablate.analysis.load import completed
    from ablate.errors import UserError

    df = pd.DataFrame({"state": ["COMPLETE"], "value": [0.5], "score": [0.5], "noise_free": [0.4]})
    df.attrs["study"] = "simq"
    try:
        completed(df, "scor")
    except UserError as err:
        assert "metric `scor` is not recorded by any completed trial of study `simq` (did " in (
            str(err)
        )
        assert "(did you mean `score`?); choose one of:" in str(err)
    else:
        raise AssertionError("no error")
