"""`timm-dan data info|export`: inspect a FER data set, `save_to_disk` it, or mirror it privately on the Hub."""
import argparse
import ast
import json
import sys
import warnings
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from datasets import DatasetDict

    from ..data.builder import FERReport

__all__ = ['add_parser', 'dataset_summary', 'embed_images']

DATASET_NAMES = ('affectnet', 'expw', 'fer2013', 'ferplus', 'rafdb', 'sfew', 'synthetic')
"""= sorted(timm_dan.data.FER_DATASETS); `timm-dan data --help` does not import datasets or torch."""

DESCRIPTION = ('Inspect a FER data set (images per split and class; dropped, missing and corrupt files), save it '
               'with save_to_disk, or mirror it privately on the Hugging Face Hub.')


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser('data', help='inspect and export FER data sets', description=DESCRIPTION)
    commands = parser.add_subparsers(dest='data_command', metavar='{info,export}', required=True)
    for name, help_text in (('info', 'images per split and class, and what was dropped, missing or corrupt'),
                            ('export', 'write the DatasetDict with save_to_disk and/or push it to the Hub')):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument('name', choices=DATASET_NAMES, help='data set')
        sub.add_argument('--data-dir', help='the data set root, in its official layout (not for synthetic)')
        sub.add_argument('--num-classes', type=int, help='7 or 8 (affectnet), 2..8 (synthetic)')
        sub.add_argument('-o', '--option', type=_option, action='append', default=[], metavar='KEY=VALUE',
                         help='other load_fer_dataset options, e.g. aligned=False, seed=1, image_size=96')
        sub.add_argument('--cache-dir', help='cache folder (default: the datasets cache)')
        if name == 'info':
            sub.add_argument('--json', action='store_true', help='print JSON instead of a table')
            sub.set_defaults(func=run_info)
        else:
            sub.add_argument('--output', help='folder for save_to_disk (images embedded)')
            sub.add_argument('--push-to-hub', metavar='REPO', help='upload to this Hub dataset repo (needs a token)')
            sub.add_argument('--private', action='store_true', help='make the Hub repo private (licensed data!)')
            sub.add_argument('--on-bad', choices=('error', 'skip'), default='error',
                             help='missing or corrupt images: fail (default) or skip with a warning')
            sub.set_defaults(func=run_export)


def _load(args, on_bad: str) -> tuple['DatasetDict', Optional['FERReport']]:
    from ..data.api import load_fer_dataset
    options = dict(args.option)
    if args.num_classes is not None:
        options['num_classes'] = args.num_classes
    return load_fer_dataset(args.name, args.data_dir, on_bad=on_bad, cache_dir=args.cache_dir, return_report=True,
                            **options)


def dataset_summary(name: str, dataset: 'DatasetDict', report: Optional['FERReport']) -> dict[str, Any]:
    """Images per split and class, with the dropped / missing / corrupt counts of the report."""
    splits = {}
    for split, ds in dataset.items():
        names = ds.features['label'].names
        counts = [0] * len(names)
        for label in ds['label']:
            counts[label] += 1
        splits[split] = {'num_rows': ds.num_rows, 'classes': dict(zip(names, counts, strict=True))}
    summary: dict[str, Any] = {'name': name, 'splits': splits}
    for kind in ('dropped', 'missing', 'corrupt'):
        value = getattr(report, kind) if report else {}
        summary[kind] = {split: value.get(split, {} if kind == 'dropped' else []) for split in dataset}
    return summary


def _table(summary: dict[str, Any]) -> str:
    splits = list(summary['splits'])
    names = list(next(iter(summary['splits'].values()))['classes'])
    width = max(10, *(len(s) for s in splits))
    rows = [f'{"class":<10}' + ''.join(f'{s:>{width + 2}}' for s in splits) + f'{"total":>{width + 2}}']
    for name in names:
        counts = [summary['splits'][s]['classes'][name] for s in splits]
        rows.append(f'{name:<10}' + ''.join(f'{c:>{width + 2}}' for c in counts) + f'{sum(counts):>{width + 2}}')
    totals = [summary['splits'][s]['num_rows'] for s in splits]
    rows.append(f'{"total":<10}' + ''.join(f'{c:>{width + 2}}' for c in totals) + f'{sum(totals):>{width + 2}}')
    for kind in ('dropped', 'missing', 'corrupt'):
        counts = [sum(v.values()) if kind == 'dropped' else len(v) for v in summary[kind].values()]
        rows.append(f'{kind:<10}' + ''.join(f'{c:>{width + 2}}' for c in counts) + f'{sum(counts):>{width + 2}}')
    for split, reasons in summary['dropped'].items():
        rows += [f'  dropped ({split}): {count} {reason}' for reason, count in sorted(reasons.items())]
    for kind in ('missing', 'corrupt'):
        for split, paths in summary[kind].items():
            rows += [f'  {kind} ({split}): {p}' for p in paths[:10]] + (
                [f'  ... {len(paths) - 10} more'] if len(paths) > 10 else [])
    from ..data.registry import FER_DATASETS
    return '\n'.join([f'{summary["name"]}: {FER_DATASETS[summary["name"]].title}'] + rows)


def run_info(args) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)  # missing / corrupt files are listed below instead
            dataset, report = _load(args, on_bad='skip')
    except (OSError, ValueError, TypeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    summary = dataset_summary(args.name, dataset, report)
    print(json.dumps(summary, indent=1) if args.json else _table(summary))
    return 0


def embed_images(dataset: 'DatasetDict') -> 'DatasetDict':
    """Copy images that are only referenced by path into the tables, so that the export stands alone."""
    from datasets import DatasetDict
    from datasets.table import embed_table_storage
    return DatasetDict({
        split: ds.with_format('arrow').map(embed_table_storage, batched=True).with_format(None)
        for split, ds in dataset.items()
    })


def run_export(args) -> int:
    if not args.output and not args.push_to_hub:
        print('error: give --output DIR and/or --push-to-hub REPO', file=sys.stderr)
        return 2
    if args.private and not args.push_to_hub:
        print('error: --private only applies with --push-to-hub REPO', file=sys.stderr)
        return 2
    token = None
    if args.push_to_hub:
        from ..hub.publish import upload_token
        try:
            token = upload_token(args.push_to_hub)
        except RuntimeError as e:
            print(f'error: --push-to-hub: {e}', file=sys.stderr)
            return 2
    try:
        dataset, _ = _load(args, on_bad=args.on_bad)
    except (OSError, ValueError, TypeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    dataset = embed_images(dataset)
    if args.output:
        dataset.save_to_disk(args.output)
        print(f'saved {args.name} ({", ".join(f"{s}: {d.num_rows}" for s, d in dataset.items())}) to {args.output}')
    if args.push_to_hub:
        dataset.push_to_hub(args.push_to_hub, private=args.private, token=token)
        print(f'pushed {args.name} to {args.push_to_hub}{" (private)" if args.private else ""}')
    return 0
