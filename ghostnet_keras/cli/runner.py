"""Console-script plumbing shared by every command: a user error is one `error: ...` line.

`run(main, define_flags)` parses the absl flags and runs `main`. A bad flag, a stray
positional argument or an `app.UsageError` prints `error: <what is wrong>` on stderr and exits
2; a user error (`UserError`, `ValueError` such as `WeightsError`, `OSError` such as a missing
file, a missing package or Keras backend) prints `error: <message>` and exits 1. Anything else is a
bug and keeps its traceback. `GHOSTNET_TRACEBACK=1` shows the traceback of user errors too.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from absl import app, flags

USAGE_EXIT = 2
ERROR_EXIT = 1
TRACEBACK_ENV = "GHOSTNET_TRACEBACK"


class UserError(Exception):
    """What the user asked for cannot be done (e.g. weights that cannot be downloaded)."""


# The library's errors that describe the user's input (arguments, files, environment).
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError, ImportError)


def fail(message: str, exit_code: int = ERROR_EXIT) -> NoReturn:
    """Prints `error: message` on stderr and exits with `exit_code`."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(exit_code)


def describe(error: BaseException) -> str:
    """The message of a user error (an `OSError`'s reason and file name without `[Errno n]`)."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return str(error) or type(error).__name__


def parse_flags(argv: Sequence[str]) -> list[str]:
    """absl's flag parsing with a one-line error and exit code 2 for a bad flag."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        fail(f"{error} (--helpfull lists the flags)", USAGE_EXIT)


def _guarded(
    main: Callable[[Sequence[str]], Any],
    user_errors: tuple[type[BaseException], ...],
    argv: Sequence[str],
) -> Any:
    if len(argv) > 1:
        fail(f"Unexpected arguments: {' '.join(argv[1:])} (every option is a --flag=value)",
             USAGE_EXIT)
    if os.environ.get(TRACEBACK_ENV):
        return main(argv)
    try:
        return main(argv)
    except app.UsageError as error:
        fail(str(error), USAGE_EXIT)
    except user_errors as error:
        fail(describe(error), ERROR_EXIT)


def run(
    main: Callable[[Sequence[str]], Any],
    define_flags: Callable[[], None],
    *,
    user_errors: tuple[type[BaseException], ...] = (),
) -> None:
    """Defines the flags and runs `main(argv)` as a command (see the module doc).

    `user_errors`: further exception types the command reports as user errors (e.g. a
    conversion error of the TFLite converter).
    """
    define_flags()
    app.run(functools.partial(_guarded, main, USER_ERRORS + tuple(user_errors)),
            flags_parser=parse_flags)
