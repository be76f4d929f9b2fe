"""The `timm-dan` command line: `data`, `predict`, `export`, `hub` and `demo` subcommands.

Each subcommand lives in a module of this package that defines `add_parser(subparsers)`; the parser it adds sets
`func(args) -> int`. Only the module of the command being run is imported, so `timm-dan --help` and
`--version` do not load torch.
"""
import argparse
import importlib
import sys
from typing import NoReturn, Optional

from ..cpu import exit_now
from ..version import __version__
from .errors import USER_ERRORS, error_line

# command -> (module defining it, one-line help shown by `timm-dan --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    'data': ('timm_dan.cli.data', 'inspect and export FER data sets'),
    'predict': ('timm_dan.cli.predict', 'detect faces and predict their expressions in images, folders or videos'),
    'export': ('timm_dan.cli.export', 'export a model to ONNX, checked against PyTorch with onnxruntime'),
    'hub': ('timm_dan.cli.hub', "convert the authors' checkpoints, render model cards, upload to the Hub (models, "
                                "the demo as a Space)"),
    'demo': ('timm_dan.cli.demo', 'serve the web demo: photos, webcam and videos in the browser'),
}


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser, with the full arguments of `command` only (the others are listed by name and help)."""
    parser = argparse.ArgumentParser(
        prog='timm-dan',
        description='DAN facial expression recognition on timm: data sets, prediction, export, Hub, web demo.')
    parser.add_argument('--version', action='version', version=f'timm-dan {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (module, help_text) in COMMANDS.items():
        if name == command:
            importlib.import_module(module).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith('-')), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2 if args.command is None and argv else 0
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:  # bad input found inside a command: one line naming it, not a traceback
        print(error_line(f'timm-dan {args.command}', e), file=sys.stderr)
        return 1


def console_main() -> NoReturn:
    """The `timm-dan` console script: `main()`, then exit without the interpreter's final garbage collection (2-3 s
    once torch is loaded)."""
    exit_now(main())


if __name__ == '__main__':
    console_main()
