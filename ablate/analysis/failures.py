"""The study's failed trials, counted one way in the report, `ablate status` and the mixtures
table: a trial requeued after its driver died is not a failure (its copy runs instead), nor is
one left out when the job's design shrank (`dropped`: never run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ablate.analysis.tables import design_points, failed_trials

#: The report lists at most this many failed design points by name.
MAX_LISTED = 10


@dataclass(frozen=True)
class Failures:
    """The study's failed trials, counted one way everywhere: a trial requeued after its driver
    died is "requeued" (its copy runs instead), not failed."""

    trials: int = 0
    """Failed trials, requeued ones excluded."""
    points: int = 0
    """Design points (mixture x volume x seed) those trials are at."""
    left_out: tuple[tuple[str, int, str], ...] = ()
    """Points with no completed trial: (point, failed trials there, the first error)."""
    rerun: int = 0
    """Failed trials whose point completed since (retried)."""
    requeued: int = 0
    dropped: int = 0
    """Waiting trials left out when the job's design shrank (never run: `dropped`)."""

    def summary(self) -> str:
        """`6 failed trials at 3 design points` (and the requeued ones, when any)."""
        text = (
            f"{self.trials} failed trial(s) at {self.points} design point(s)"
            if self.trials
            else "no failed trial"
        )
        text += f", {self.requeued} requeued" if self.requeued else ""
        return text + (f", {self.dropped} dropped from the design" if self.dropped else "")

    def describe(self) -> list[str]:
        """The failures in words, the points left out listed with their first error."""
        out = []
        if self.trials:
            again = f"; {self.rerun} of them ran again and completed" if self.rerun else ""
            out.append(f"{self.summary()}{again}.")
        if self.left_out:
            listed = "; ".join(
                f"{name} ({k} failed; first error: {err or 'none recorded'})"
                for name, k, err in self.left_out[:MAX_LISTED]
            )
            more = len(self.left_out) - MAX_LISTED
            out.append(
                f"{len(self.left_out)} design point(s) have no completed trial and are left out "
                f"(`ablate sweep` again retries them): {listed}"
                + (f"; and {more} more (trials.csv lists every error)." if more > 0 else ".")
            )
        if self.requeued:
            out.append(
                f"{self.requeued} trial(s) were requeued (a stopped driver's, run again as new "
                "trials): not counted as failed."
            )
        if self.dropped:
            out.append(
                f"{self.dropped} waiting trial(s) were dropped, never run: a later run's job "
                "no longer had their design points (restore them in the job and `ablate sweep` "
                "runs them); not counted as failed."
            )
        return out


def failures(df: Any) -> Failures:
    """Count the failed trials of a study table: per design point (`mixture`, which names the
    seed), requeued trials apart."""
    if "mixture" not in df or not (df["state"] == "FAIL").any():
        return Failures()
    failed = failed_trials(df)
    point = design_points(df)  # a name may stand for two mixtures after a design change
    done = set(point[df["state"] == "COMPLETE"])
    left = failed[~point[failed.index].isin(done)]
    errors = left.get("error")
    listed = []
    for name, part in left.groupby(point[left.index], sort=False):
        first = "" if errors is None else str(next(iter(errors[part.index].dropna()), ""))
        listed.append((str(name), len(part), first.splitlines()[0][:200] if first else ""))
    return Failures(
        trials=len(failed),
        points=int(point[failed.index].nunique()),
        left_out=tuple(listed),
        rerun=len(failed) - len(left),
        requeued=_flagged(df, "requeued"),
        dropped=_flagged(df, "dropped"),
    )


def _flagged(df: Any, column: str) -> int:
    """FAIL trials marked `column` (`requeued`, `dropped`)."""
    if column not in df:
        return 0
    return int(((df["state"] == "FAIL") & df[column].fillna(False).astype(bool)).sum())
