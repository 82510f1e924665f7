"""A function in a forked child process, its result or exception sent back over a pipe.

`ablate report` runs the surrogates, half the plots and the MLflow lookup in children while the
parent draws the rest: the arguments are shared by the fork (nothing is pickled on the way in,
only the result on the way back), and a heavy import done in a child costs the parent nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any


def can_fork() -> bool:
    """Whether children can be forked here (Linux; elsewhere everything runs in this process)."""
    import multiprocessing

    return sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()


def _child_main(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    # the parent's SIGTERM handler (`stop_on_sigterm`) came with the fork: `Child.stop`'s
    # terminate raised `Terminated` in the child, printed as a traceback (review q#12); the
    # signal stays blocked from the fork to here (a terminate in between waits, then ends it)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    try:
        result: tuple[str, Any] = ("ok", fn(conn, *args))
    except BaseException as err:
        result = ("error", err)
    try:
        conn.send(result)
    except Exception as err:  # an unpicklable result or exception
        conn.send(("error", RuntimeError(f"{type(err).__name__}: {err}; in {result[1]!r}")))


class Child:
    """`fn(conn, *args)` in a forked process (arguments shared by the fork, not pickled); its
    return value or exception comes back over `conn`, which `fn` may also read from."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(theirs, fn, args), daemon=True)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            self.proc.start()
        finally:  # (a SIGTERM meanwhile reaches the parent now, as it would have)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()

    def send(self, obj: Any) -> None:
        """Hand `fn` something it reads from its `conn` (files to log once they exist). A
        child that has ended already is not an error here: `result` raises what ended it."""
        with contextlib.suppress(OSError):  # BrokenPipeError: the child's end is closed
            self.conn.send(obj)

    def result(self) -> Any:
        """Wait for `fn`'s return value; its exception is raised here."""
        try:
            kind, value = self.conn.recv()
        except EOFError:
            self.proc.join()
            raise RuntimeError(
                f"a report worker process died (exit code {self.proc.exitcode})"
            ) from None
        self.proc.join()
        if kind == "error":
            raise value
        return value

    def stop(self) -> None:
        """End the child if it still runs (an error in the parent) and close the pipe."""
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join()
        self.conn.close()
