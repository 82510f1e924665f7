"""`ablate` = `main()`: parse, run the command, print a user's mistake as one line."""

from __future__ import annotations

import select
import signal
import sys
from collections.abc import Sequence

from ablate.cli.commands import run
from ablate.cli.parser import build_parser
from ablate.errors import SIGTERM_SEEN, Terminated, UserError, stop_on_sigterm


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # an import restarts, a report is drawn again (review q#14: it said "resume")
    again = "start again" if args.command in ("data", "report") else "resume"
    # SIGTERM (`kill PID`, a scheduler's preemption) stops any command as Ctrl-C does, from its
    # start: one before a sweep's Ray started used to end the process silently (-15)
    previous = stop_on_sigterm()
    SIGTERM_SEEN.clear()  # (an earlier command in this process, a test's)
    try:
        return run(args)
    except UserError as err:
        print(f"ablate: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ablate data show POOL | head`: the reader of stdout left
        if not _stdout_gone():
            raise  # another pipe (a report's worker process): a failure, never a quiet 0
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as err:
        if isinstance(err, Terminated) or SIGTERM_SEEN.is_set():
            print(f"ablate: stopped by SIGTERM; rerun the same command to {again}", file=sys.stderr)
            return 143
        print(f"ablate: interrupted; rerun the same command to {again}", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has left (poll: POLLERR on its write end)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poll.poll(0))
    except (OSError, ValueError):  # no file descriptor (captured, closed): not a pipe we know
        return False
