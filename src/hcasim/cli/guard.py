"""The one top-level handler every hcasim command line runs under.

Whatever a command does, two things can fail at any write or any file it opens, and neither
may end in a Python traceback (docs/user-guide.md, "Errors"):

* its output goes to a pipe whose reader went away (``hcasim status | head -1``): the command
  stops silently with status 141, what a shell reports for a C tool killed by SIGPIPE;
* it was started with standard output or error closed: what it writes there goes nowhere;
* the system refuses a file operation (a missing directory, a name too long, a full disk):
  one line naming the file and the system's reason, status 1.

Standard output is switched to ``surrogateescape`` first, so names given on the command line
in bytes that are not UTF-8 are written back as the same bytes, as a C tool would.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

#: Exit status of a command whose output pipe was closed: 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141
#: Exit status of a command interrupted by Ctrl-C: 128 + SIGINT.
EXIT_INTERRUPTED = 130


def describe_os_error(exc: OSError) -> str:
    """``FILE: reason`` (or just the reason), the way the C library's perror puts it."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {reason}"
    return reason


def run_guarded(body: Callable[[], int], report: Callable[[str], None]) -> int:
    """Run a command's ``body``; a closed output pipe and an OSError end it cleanly.

    ``report`` prints one error line in the command's own style (``hcasim: ...`` on stderr,
    flint's ``-E- ...`` on stdout).
    """
    # Started with stdout or stderr closed (`cmd >&-`), Python has None there; a C tool's
    # writes would fail unseen, so ours go to /dev/null.
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")
    try:
        status = body()
        sys.stdout.flush()  # a closed pipe shows here for output still buffered
        return status
    except BrokenPipeError:
        return _broken_pipe()
    except KeyboardInterrupt:  # Ctrl-C: the shell's 128 + SIGINT, without a traceback
        return EXIT_INTERRUPTED
    except OSError as exc:
        try:
            report(describe_os_error(exc))
        except BrokenPipeError:
            return _broken_pipe()
        return 1


def _broken_pipe() -> int:
    # Whatever is still buffered would fail again when Python flushes at exit: point
    # stdout at /dev/null so the interpreter's own flush finds nothing to complain about.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE
