"""How the command line reports bad input: one line naming it and what was expected, never a traceback."""
import argparse
from typing import Any

__all__ = ['USER_ERRORS', 'error_line', 'call_or_exit']

USER_ERRORS = (FileNotFoundError, FileExistsError, KeyError, ValueError, RuntimeError)
"""What a command reports as a one-line error (bad input, missing files, no token) with exit status 1."""


def error_line(prog: str, error: BaseException) -> str:
    """`PROG: error: MESSAGE` (a KeyError's message without the quotes repr adds)."""
    return f'{prog}: error: {error.args[0] if isinstance(error, KeyError) and error.args else error}'


def call_or_exit(parser: argparse.ArgumentParser, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run `fn`; a `USER_ERRORS` exception ends the program with `error_line`, exit status 1."""
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as e:
        parser.exit(1, error_line(parser.prog, e) + '\n')
