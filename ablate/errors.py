"""The one exception type for a user's mistake (the CLI prints it without a traceback), the
stop a SIGTERM makes, and the did-you-mean hint messages share."""

from __future__ import annotations

import contextlib
import difflib
import signal
import threading
from collections.abc import Iterable, Iterator
from typing import Any


class UserError(Exception):
    """Bad input from the user (a file, a key, a value). The message names where and how to fix it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`, `ray job stop`) in a sweep's driver: stopped as Ctrl-C stops it
    (trials in flight requeued, runs marked), then the CLI exits 143."""


#: Set by the SIGTERM handler: Ray's wait turns any KeyboardInterrupt raised inside it
#: (`Terminated` included) into a plain one, and the CLI then said "interrupted", exit 130.
SIGTERM_SEEN = threading.Event()


def stop_on_sigterm() -> Any:
    """From now on SIGTERM raises `Terminated` (a KeyboardInterrupt: it stops what runs as
    Ctrl-C does). Returns the handler it replaced, to restore; None off the main thread, where
    Python cannot set one."""

    def stop(signum: int, frame: Any) -> None:
        SIGTERM_SEEN.set()
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, stop)


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM held back for the block (a C++ call that an exception raised inside
    would leave half done), then raised as they would have been: `KeyboardInterrupt`, or
    `Terminated` for SIGTERM. Yields the signals received (the caller may clean up before they
    are raised: see `raise_deferred`). Off the main thread, where Python sets no handler,
    nothing is held."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in held}
    for s in held:
        signal.signal(s, lambda signum, frame: got.append(signum))
    try:
        yield got
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def raise_deferred(got: list[int]) -> None:
    """Raise what `signals_deferred` held back: SIGTERM first (it stops as `Terminated`)."""
    if signal.SIGTERM in got:
        SIGTERM_SEEN.set()
        raise Terminated()
    if got:
        raise KeyboardInterrupt


def did_you_mean(
    name: object, known: Iterable[str], prefix: str = "", ignore_case: bool = False
) -> str:
    """` (did you mean `PREFIX<closest>`?)` for the known name closest to `name`, or "";
    `ignore_case`: compared in lower case (`Q_PROJ` suggests `q_proj`), the first spelling of
    a name shown."""
    if not ignore_case:
        close = difflib.get_close_matches(str(name), list(known), n=1)
        return f" (did you mean `{prefix}{close[0]}`?)" if close else ""
    by_lower = {k.lower(): k for k in reversed(list(known))}  # the first spelling wins
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1)
    return f" (did you mean `{prefix}{by_lower[close[0]]}`?)" if close else ""


def error_chain(err: BaseException) -> list[BaseException]:
    """`err`, its cause, its cause's cause, ... as a traceback reads them: `raise ... from`,
    else what was being handled when it was raised (MLflow's errors wrap requests' that way)."""
    chain: list[BaseException] = []
    seen: BaseException | None = err
    while seen is not None and all(seen is not e for e in chain):
        chain.append(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return chain


def cause_line(err: BaseException, limit: int = 200) -> str:
    """Why `err` happened, in one line of whole words: the first line of the innermost error of
    its chain that says something (`[Errno 111] Connection refused`, a driver's "server closed
    the connection unexpectedly"), not the wrappers quoting the request or Optuna's guess
    ("invalid data in the commit"); cut at a word before `limit` characters, with `...`."""
    said = [str(e).strip() for e in error_chain(err) if any(c.isalpha() for c in str(e))]
    line = said[-1].splitlines()[0].strip() if said else type(err).__name__
    if len(line) <= limit:
        return line
    cut = line[: limit - 3].rsplit(" ", 1)[0] if " " in line[: limit - 3] else line[: limit - 3]
    return cut.rstrip(" ,;:(") + "..."
