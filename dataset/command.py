"""What every command-line entry point shares: running a parsed command with clean errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from dataset.errors import UserError


# Errors that mean "the input or the options are wrong": one line, exit code 2, no traceback.
# Any other exception (a plain ValueError included) is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    PermissionError,
)


def add_global_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--traceback", action="store_true", help="show the full Python traceback on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")


def run_command(args: argparse.Namespace, prog: str) -> int:
    """Call `args.func(args)`; user errors print `prog: error: ...` and return 2."""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        if args.traceback or os.environ.get("ACTAVATAR_TRACEBACK"):
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def standalone_main(
    prog: str,
    description: str,
    argv: Sequence[str] | None,
    *,
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
    register: Callable[[argparse._SubParsersAction], None] | None = None,
) -> int:
    """`python -m <package>.cli …` without the console script: the same commands, one parser.

    Pass `configure` for a single command or `register` for a group of subcommands.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_global_flags(parser)
    if register is not None:
        register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    elif configure is not None:
        configure(parser)
    else:
        raise TypeError("standalone_main needs configure or register")
    return run_command(parser.parse_args(argv), prog=prog)
