"""Start-up time of the `timm-dan` command line and of `import timm_dan` (issue 17), each in a fresh interpreter.

Every command runs `--rounds` times in interleaved order (one of each per round, so drift cancels); the table
gives the median wall time and which heavy modules (torch, timm, datasets, cv2) the command imported, read from
`python -X importtime`. `import timm_dan, timm` is the reference: what a command that needs the model pays.

    python benchmarks/cli_startup.py [--rounds 10] [--json OUT]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    'timm-dan --version': ['-m', 'timm_dan', '--version'],
    'timm-dan --help': ['-m', 'timm_dan', '--help'],
    'timm-dan predict --help': ['-m', 'timm_dan', 'predict', '--help'],
    'timm-dan hub --help': ['-m', 'timm_dan', 'hub', '--help'],
    'import timm_dan': ['-c', 'import timm_dan'],
    'import timm_dan, timm (reference)': ['-c', 'import timm_dan, timm'],
}
HEAVY = ('torch', 'timm', 'datasets', 'cv2')


def _env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT), env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    return env


def seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def heavy_imports(args: list[str]) -> list[str]:
    """The `HEAVY` top-level modules that `args` imports."""
    err = subprocess.run([sys.executable, '-X', 'importtime', *args], env=_env(), cwd=ROOT, capture_output=True,
                         text=True, check=True).stderr
    names = {line.rsplit('|', 1)[1].strip() for line in err.splitlines() if line.startswith('import time:')}
    return [name for name in HEAVY if name in names]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--json', type=Path, help='write the results here')
    args = parser.parse_args(argv)
    times = {name: [] for name in COMMANDS}
    names = list(COMMANDS)
    for name in names:  # warm the OS file cache and the bytecode caches
        seconds(COMMANDS[name])
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(seconds(COMMANDS[name]))
    cpu = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith('model name')),
               platform.processor()) if Path('/proc/cpuinfo').is_file() else platform.processor()
    results = {'machine': f'{cpu}, {os.cpu_count()} cores', 'python': platform.python_version(),
               'rounds': args.rounds, 'commands': {}}
    print(f'{results["machine"]}, Python {results["python"]}, median of {args.rounds} runs\n')
    print(f'{"command":36s} {"seconds":>8s}  heavy imports')
    for name, values in times.items():
        heavy = heavy_imports(COMMANDS[name])
        results['commands'][name] = {'median_s': statistics.median(values), 'min_s': min(values),
                                     'heavy_imports': heavy}
        print(f'{name:36s} {statistics.median(values):8.3f}  {", ".join(heavy) or "-"}')
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + '\n', encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())
