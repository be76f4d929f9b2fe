"""Mean ± std over runs (seeds) of the final epoch's and the selected (best) epoch's metrics.

    python train_scripts/summarize.py runs/rafdb-s1 runs/rafdb-s2 runs/rafdb-s3 [--json OUT]

`final` is the last epoch of metrics.jsonl (validation); `best/<split>` are the selected weights evaluated at
the end of the run (results.json: validation, and test where the config has one). Std is the sample std (n-1).
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

from timm_dan.training.reporting import CARD_METRICS, read_metrics


def collect(run: Path) -> dict:
    """{'final/validation': {...}, 'best/validation': {...}, 'best/test': {...}} of one run."""
    records = read_metrics(run)
    if not records:
        raise ValueError(f'{run / "metrics.jsonl"} holds no epochs')
    out = {'final/validation': records[-1]['validation']}
    results = run / 'results.json'
    if results.is_file():
        summary = json.loads(results.read_text())
        out.update({f'best/{role}': summary[role] for role in ('validation', 'test') if role in summary})
    return out


def summarize(runs: list) -> dict:
    """{group: {metric: {'mean', 'std', 'n', 'values'}}} in percent, over the runs that have the group."""
    per_run = [collect(Path(r)) for r in runs]
    table = {}
    for group in dict.fromkeys(g for run in per_run for g in run):
        table[group] = {}
        for name in CARD_METRICS:
            values = [100 * run[group][name] for run in per_run if group in run and name in run[group]]
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                table[group][name] = {'mean': statistics.fmean(values), 'std': std, 'n': len(values),
                                      'values': values}
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('runs', nargs='+', help='--output-dir folders of training runs')
    parser.add_argument('--json', default=None, help='also write the table as JSON')
    args = parser.parse_args(argv)
    try:
        table = summarize(args.runs)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}') from e
    print(f'{len(args.runs)} runs: {", ".join(args.runs)}')
    print(f'{"":<18}' + ''.join(f'{name:>26}' for name in CARD_METRICS))
    for group, metrics in table.items():
        cells = [f'{m["mean"]:.2f} ± {m["std"]:.2f} (n={m["n"]})' if (m := metrics.get(name)) else '-'
                 for name in CARD_METRICS]
        print(f'{group:<18}' + ''.join(f'{c:>26}' for c in cells))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
