"""train.py end to end, data included: the synthetic faces (drawn at 64 px: drawing them is single-threaded), trained
at 224 px with train.py's defaults on the device (bf16 where native, channels_last, `device_data auto`), `--compile`
as the run's; the images/s of each epoch (metrics.jsonl `train_images_per_s`; the first one compiles), and the
best later epoch's over the in-memory step rate of the `loop` section of the same run when that ran first
(`trainpy_over_in_memory`)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import DEMO_CONFIG, ROOT


def run(args: argparse.Namespace, results: dict) -> None:
    options = {'num_samples': args.trainpy_images, 'num_validation_samples': min(2048, args.trainpy_images // 4),
               'image_size': 64, 'num_classes': 8, 'seed': 0}
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, str(ROOT / 'train_scripts' / 'train.py'),
            '--config', str(DEMO_CONFIG),
            '--dataset-options', json.dumps(options), '--image-size', '224', '--batch-size', str(args.batch_size),
            '--epochs', str(args.trainpy_epochs), '--num-workers', str(args.data_workers), '--output-dir', tmp,
            '--log-every', '1000', *(['--compile'] if args.compile else []),
        ]
        env = dict(os.environ, HF_HOME=str(Path(tmp) / 'hf'), HF_HUB_OFFLINE='1',
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
        done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f'train.py failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}')
        records = [json.loads(line) for line in (Path(tmp) / 'metrics.jsonl').read_text().splitlines()]
    results['trainpy_data'] = next(line for line in done.stdout.splitlines() if line.startswith('Data: '))
    results['trainpy_images_per_s'] = {f'epoch {r["epoch"]}': r['train_images_per_s'] for r in records}
    best = max(r['train_images_per_s'] for r in records[1:] or records)
    in_memory = results.get('loop_images_per_s', {}).get('data excluded')
    if in_memory:
        results['trainpy_over_in_memory'] = best / in_memory
