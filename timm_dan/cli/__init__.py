"""The `timm-dan` command line. Each subcommand lives beside the code it drives and adds its own parser."""
import argparse
import importlib
import sys
from typing import Optional

from .version import __version__

# modules that define `add_parser(subparsers)`; the parser's `func(args) -> int` runs the command
SUBCOMMAND_MODULES: tuple = ('timm_dan.data.cli', 'timm_dan.inference.cli')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='timm-dan',
        description='DAN facial expression recognition on timm: data sets, prediction, export.',
    )
    parser.add_argument('--version', action='version', version=f'timm-dan {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2 if args.command is None and argv else 0
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
