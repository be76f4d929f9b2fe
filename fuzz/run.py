"""The fuzzing campaign: each target of `fuzz/targets.py` under atheris (coverage-guided, libFuzzer) for a set time.

    python -m fuzz.run --seconds 120                 # every target, 2 minutes each; prints a table
    python -m fuzz.run --seconds 600 --only affectnet_npy image_reader --json fuzz-results.json
    python -m fuzz.run --worker rafdb_list --seconds 60   # one target in this process (what the campaign runs)

Each target starts from its seed corpus (`fuzz/corpus/<target>/`, committed) and its regression inputs
(`fuzz/regressions/<target>/`, committed: every crash found, kept after the fix) and grows a working corpus in
`fuzz/.work/<target>/` (not committed). A crash (an exception the target does not allow) is written to
`fuzz/regressions/<target>/crash-<sha1>` and ends that target's run; fix it, keep the file, and
`tests/fuzz/test_corpus.py` replays it in CI with the rest of the corpus (seconds, no atheris needed).
Needs atheris (`pip install -e ".[fuzz]"`; Linux and macOS).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
INSTRUMENTED = ('timm_dan', 'yaml', 'PIL', 'numpy.lib.format', 'csv', 'json')
"""Modules whose Python code atheris instruments for coverage."""


def _worker(name: str, seconds: int, max_len: int, runs: int) -> None:
    import atheris

    work, seeds, regressions = (HERE / '.work' / name, HERE / 'corpus' / name, HERE / 'regressions' / name)
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        from fuzz.targets import TARGETS
        target = TARGETS[name]
        for seed in [b''] + [p.read_bytes() for p in sorted(seeds.glob('*'))]:
            try:  # imports every module the target reaches (Pillow's plugins, say) while instrumenting
                target.check(seed)
            except Exception:  # noqa: BLE001 - a finding: the fuzzer reports it in order
                pass
    for folder in (work, regressions):
        folder.mkdir(parents=True, exist_ok=True)
    args = [sys.argv[0], str(work), *(str(f) for f in (seeds, regressions) if f.is_dir()),
            f'-max_total_time={seconds}', f'-max_len={max(max_len, target.max_len)}',
            f'-artifact_prefix={regressions}/', '-print_final_stats=1', '-timeout=30', '-rss_limit_mb=4096']
    if runs:
        args.append(f'-runs={runs}')
    atheris.Setup(args, target.check)
    atheris.Fuzz()


_STAT = re.compile(r'^stat::(\w+):\s+(\d+)', re.M)
_PROGRESS = re.compile(r'^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)(?: corp: (\d+))?', re.M)


def _campaign(names: list[str], seconds: int, max_len: int) -> list[dict]:
    results = []
    for name in names:
        regressions = HERE / 'regressions' / name
        before = set(regressions.glob('*')) if regressions.is_dir() else set()
        start = time.time()
        with tempfile.TemporaryDirectory(prefix=f'timm-dan-fuzz-{name}-') as tmp:  # libFuzzer exits without atexit
            proc = subprocess.run([sys.executable, '-m', 'fuzz.run', '--worker', name, '--seconds', str(seconds),
                                   '--max-len', str(max_len)], cwd=REPO, capture_output=True, text=True,
                                  timeout=seconds + 600, env={**os.environ, 'TMPDIR': tmp})
        log = proc.stdout + proc.stderr
        (HERE / '.work').mkdir(exist_ok=True)
        (HERE / '.work' / f'{name}.log').write_text(log)
        stats = {k: int(v) for k, v in _STAT.findall(log)}
        progress = _PROGRESS.findall(log)
        found = sorted(set(regressions.glob('*')) - before) if regressions.is_dir() else []
        results.append({
            'target': name, 'seconds': round(time.time() - start, 1), 'exit_code': proc.returncode,
            'executions': stats.get('number_of_executed_units', int(progress[-1][0]) if progress else 0),
            'exec_per_s': stats.get('average_exec_per_sec', 0),
            'coverage': int(progress[-1][1]) if progress else 0, 'features': int(progress[-1][2]) if progress else 0,
            'corpus': len(list((HERE / '.work' / name).glob('*'))),
            'findings': [p.name for p in found],
        })
        row = results[-1]
        print(f'{name:15s} {row["seconds"]:7.0f} s {row["executions"]:10,d} execs {row["exec_per_s"]:6d}/s '
              f'cov {row["coverage"]:6d} ft {row["features"]:6d} corpus {row["corpus"]:5d} '
              f'findings {len(found)} {" ".join(row["findings"])}', flush=True)
        if proc.returncode and not found:
            print(log[-3000:], file=sys.stderr)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seconds', type=int, default=60, help='fuzzing time per target')
    parser.add_argument('--only', nargs='+', metavar='TARGET', help='these targets (default: all)')
    parser.add_argument('--max-len', type=int, default=8192, help='longest input, in bytes')
    parser.add_argument('--json', help='also write the table as JSON here')
    parser.add_argument('--worker', metavar='TARGET', help=argparse.SUPPRESS)
    parser.add_argument('--runs', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.seconds, args.max_len, args.runs)
        return 0
    from fuzz.targets import TARGETS
    names = args.only or list(TARGETS)
    unknown = set(names) - set(TARGETS)
    if unknown:
        parser.error(f'unknown targets {sorted(unknown)}; known: {", ".join(TARGETS)}')
    print(f'fuzzing {len(names)} targets for {args.seconds} s each (atheris, libFuzzer)')
    results = _campaign(names, args.seconds, args.max_len)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if any(r['findings'] for r in results) else 0


if __name__ == '__main__':
    sys.exit(main())
