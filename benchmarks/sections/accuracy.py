"""Accuracy of train.py's demo recipe on the synthetic faces, same seed: the default precision vs fp32
(`--accuracy-compare precision`), or the device pipeline vs the DataLoader pipeline (`device-data`)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import DEMO_CONFIG, ROOT


def run(args: argparse.Namespace, results: dict) -> None:
    """train.py's synthetic demo recipe (8 classes, 64x64), as shipped (configs/synthetic.yaml, >= 90 %);
    `--quick` shortens it to 2 epochs of 1200 images, a smoke run that stays near chance (12.5 %)."""
    accuracy = {}
    quick = ['--dataset-options', json.dumps({'num_samples': 1200, 'num_validation_samples': 600, 'image_size': 64,
                                              'num_classes': 8, 'seed': 0}), '--epochs', '2'] if args.quick else []
    if args.accuracy_compare == 'precision':
        runs = {'auto': ['--precision', 'auto'], 'fp32': ['--precision', 'fp32']}
    else:
        runs = {'device data on': ['--device-data', 'on'], 'device data off': ['--device-data', 'off']}
    for name, settings in runs.items():
        with tempfile.TemporaryDirectory() as tmp:
            command = [
                sys.executable, str(ROOT / 'train_scripts' / 'train.py'),
                '--config', str(DEMO_CONFIG), *quick, *settings,
                '--output-dir', tmp, '--num-workers', '0' if args.accuracy_compare == 'precision' else
                str(args.data_workers),
            ]
            env = dict(os.environ, HF_HOME=str(Path(tmp) / 'hf'), HF_HUB_OFFLINE='1',
                       PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
            done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f'train.py {" ".join(settings)} failed:\n{done.stderr[-3000:]}')
            summary = json.loads((Path(tmp) / 'results.json').read_text())
            accuracy[name] = 100 * summary['validation']['accuracy']
    baseline = list(runs)[1]
    if accuracy[baseline] < 25:
        print(f'warning: the {baseline} run reached {accuracy[baseline]:.1f} % (chance 12.5 %): too short to compare; '
              f'run without --quick', file=sys.stderr)
    first, second = accuracy.values()
    if args.accuracy_compare == 'precision':
        results['accuracy_percent'] = accuracy
        results['bf16_accuracy_delta'] = first - second
    else:
        results['device_data_accuracy_percent'] = accuracy
        results['device_data_accuracy_delta'] = first - second
