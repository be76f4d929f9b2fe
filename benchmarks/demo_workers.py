"""Data workers against compute threads on a small CPU (issue 12): the demo recipe (`configs/synthetic.yaml`, 64 px)
trained by train.py with 0, 1 and 2 DataLoader workers and with the decoded images in memory (`--device-data on`,
no workers), each on the threads train.py picks (all cores of the process) unless `--threads` is given.

Each setting runs one epoch of `--images` faces per round, the settings interleaved (`--rounds`, so drift cancels);
the table gives the best round's training images/s (metrics.jsonl `train_images_per_s`) and its ratio over the
shipped setting (1 worker).

    python benchmarks/demo_workers.py [--images 1024] [--rounds 2] [--threads N] [--json OUT]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timm_dan.cpu import available_cpus, machine_class  # noqa: E402

SETTINGS = {
    '0 workers': ['--num-workers', '0', '--device-data', 'off'],
    '1 worker (shipped)': ['--num-workers', '1', '--device-data', 'off'],
    '2 workers': ['--num-workers', '2', '--device-data', 'off'],
    'in memory (device_data on)': ['--num-workers', '0', '--device-data', 'on'],
}
BASELINE = '1 worker (shipped)'


def images_per_s(setting: list[str], images: int, threads: list[str]) -> float:
    options = {'num_samples': images, 'num_validation_samples': 256, 'image_size': 64, 'num_classes': 8, 'seed': 0}
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, str(ROOT / 'train_scripts' / 'train.py'), '--dataset-options', json.dumps(options),
                   '--epochs', '1', '--output-dir', tmp, *setting, *threads]
        env = dict(os.environ, HF_HOME=str(Path(tmp) / 'hf'), HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1',
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
        done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f'train.py failed:\n{done.stderr[-3000:]}')
        (record,) = [json.loads(line) for line in (Path(tmp) / 'metrics.jsonl').read_text().splitlines()]
    return record['train_images_per_s']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=int, default=1024)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--json', default=None)
    args = parser.parse_args()
    threads = [] if args.threads is None else ['--threads', str(args.threads)]
    runs: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, setting in SETTINGS.items():
            runs[name].append(images_per_s(setting, args.images, threads))
    best = {name: max(values) for name, values in runs.items()}
    print(f'{platform.processor() or platform.machine()}, {machine_class()}, {available_cpus()} cores, '
          f'threads {args.threads or "auto"}, {args.images} images x {args.rounds} rounds')
    print(f'{"setting":32s} {"images/s":>9s} {"over 1 worker":>14s}')
    for name, value in best.items():
        print(f'{name:32s} {value:9.1f} {value / best[BASELINE]:14.2f}')
    if args.json:
        Path(args.json).write_text(json.dumps({'machine_class': machine_class(), 'cores': available_cpus(),
                                               'runs': runs, 'best': best}, indent=1))


if __name__ == '__main__':
    main()
