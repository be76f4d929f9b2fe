"""Does the demo recipe learn valence and arousal? train.py with train_scripts/configs/synthetic.yaml as shipped.

    OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/synthetic_va.py [--json OUT] [--keep DIR] [-- train.py options]

Runs the demo (DAN from scratch on the synthetic faces, with the valence/arousal head and the CCC loss) in a
temporary folder and reports, on the synthetic validation split: accuracy, valence and arousal CCC (target: >= 0.8
for both), RMSE and SAGR, the fitted temperature and the ECE / NLL before and after it (in-sample: the temperature
is fitted on that split), then, through train_scripts/validate.py, the same on 1000 new faces drawn with another
seed (held out: the stored temperature applied), and the wall and CPU time (the machine may be shared: the time
is indicative). Exit status 1 when a CCC is under the target. `--keep DIR` keeps the run (metrics.jsonl, the
confusion matrix, reliability.png, best/) and the held-out evaluation's (held_out.json, held_out_reliability.png).
"""
import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import DEMO_CONFIG, ROOT

TARGET_CCC = 0.8


def cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--json', default=None, help='also write the figures here')
    parser.add_argument('--keep', default=None, help='copy the run folder (with reliability.png) here')
    parser.add_argument('extra', nargs=argparse.REMAINDER, help='after --: more train.py options')
    args = parser.parse_args(argv)
    extra = args.extra[1:] if args.extra[:1] == ['--'] else args.extra
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, str(ROOT / 'train_scripts' / 'train.py'), '--config',
                   str(DEMO_CONFIG), '--output-dir', tmp, *extra]
        env = dict(os.environ, HF_HUB_OFFLINE='1', HF_HOME=str(Path(tmp) / 'hf'),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f'train.py failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}')
        results = json.loads((Path(tmp) / 'results.json').read_text())
        held_out = Path(tmp) / 'held_out.json'
        trained = json.loads((Path(tmp) / 'config.json').read_text())['dataset_options']  # with the overrides
        options = {**trained, 'num_samples': 8, 'num_validation_samples': 1000, 'seed': trained.get('seed', 0) + 1}
        check = subprocess.run([sys.executable, str(ROOT / 'train_scripts' / 'validate.py'), '--model',
                                f'local-dir:{tmp}/best', '--dataset', 'synthetic', '--dataset-options',
                                json.dumps(options), '--split', 'validation', '--output-json', str(held_out)],
                               env=env, cwd=tmp, capture_output=True, text=True)
        if check.returncode:
            raise SystemExit(f'validate.py failed:\n{check.stderr[-3000:]}')
        new_faces = json.loads(held_out.read_text())
        if args.keep:
            shutil.copytree(tmp, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns('hf', 'checkpoints'))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    validation = results['validation']
    entry = results['calibration']['splits']['validation']
    figures = {
        'cpu': f'{cpu_name()}, {os.cpu_count()} cores visible',
        'command': shlex.join(['train_scripts/train.py', '--config', 'train_scripts/configs/synthetic.yaml', *extra]),
        'wall_s': round(wall, 1), 'cpu_s': round(usage.ru_utime + usage.ru_stime, 1),
        'best_epoch': results['best_epoch'], 'accuracy': validation['accuracy'],
        'mean_class_accuracy': validation['mean_class_accuracy'],
        **{k: validation[k] for k in ('valence_ccc', 'arousal_ccc', 'valence_pcc', 'arousal_pcc', 'valence_rmse',
                                      'arousal_rmse', 'valence_sagr', 'arousal_sagr')},
        'temperature': results['calibration']['temperature'],
        'ece_before': entry['before']['ece'], 'ece_after': entry['after']['ece'],
        'nll_before': entry['before']['nll'], 'nll_after': entry['after']['nll'],
        'held_out_accuracy': new_faces['accuracy'], 'held_out_valence_ccc': new_faces['valence_ccc'],
        'held_out_arousal_ccc': new_faces['arousal_ccc'],
        'held_out_ece_before': new_faces['calibration']['splits']['evaluated']['before']['ece'],
        'held_out_ece_after': new_faces['calibration']['splits']['evaluated']['after']['ece'],
        'held_out_nll_before': new_faces['calibration']['splits']['evaluated']['before']['nll'],
        'held_out_nll_after': new_faces['calibration']['splits']['evaluated']['after']['nll'],
    }
    for key, value in figures.items():
        print(f'{key:<20} {value:.4f}' if isinstance(value, float) else f'{key:<20} {value}')
    met = figures['valence_ccc'] >= TARGET_CCC and figures['arousal_ccc'] >= TARGET_CCC
    print(f'valence and arousal CCC >= {TARGET_CCC} on the validation split: {"yes" if met else "NO"}')
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, 'target_met': met}, indent=1))
    return 0 if met else 1


if __name__ == '__main__':
    sys.exit(main())
