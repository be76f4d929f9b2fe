"""Evaluation in more processes than a split has images, or with a split that does not divide among them: every
image counts once (accelerate pads the last batches; `gather_for_metrics` drops the padding), and the metrics equal
a one-process evaluation of the same weights."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from tests.training.in_process import synthetic_validation_predictions

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    from timm_dan.hub import save_model_folder
    torch.manual_seed(0)
    model = timm.create_model('dan_resnet18', num_classes=8).eval()
    return save_model_folder(model, tmp_path_factory.mktemp('model') / 'dan',
                             card={'model_name': 'dan_resnet18.test', 'datasets': ['synthetic']})


def _options(num_images):
    return f'{{num_samples: 16, num_validation_samples: {num_images}, image_size: 32, num_classes: 8, seed: 0}}'


def _in_process(folder, num_images):
    preds, labels = synthetic_validation_predictions(folder, 16, num_images)
    return torch.zeros(8, 8, dtype=torch.long).index_put_((labels, preds), torch.ones_like(labels), accumulate=True)


@pytest.mark.slow
@pytest.mark.parametrize('num_processes, num_images, batch_size', [(3, 2, 1), (3, 5, 2)])
def test_every_image_counts_once_in_n_processes(folder, tmp_path, subprocess_env, num_processes, num_images,
                                                batch_size):
    out = tmp_path / 'eval.json'
    env = dict(subprocess_env, ACCELERATE_USE_CPU='1', OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', str(num_processes),
           '--num_machines', '1', '--main_process_port', str(29550 + num_images), '--dynamo_backend', 'no',
           '--mixed_precision', 'no', 'train_scripts/validate.py', '--model', f'local-dir:{folder}', '--dataset',
           'synthetic', '--dataset-options', _options(num_images), '--split', 'validation', '--image-size', '32',
           '--batch-size', str(batch_size), '--num-workers', '0', '--precision', 'fp32', '--output-json', str(out)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    measured = json.loads(out.read_text())
    assert measured['num_samples'] == num_images
    assert sum(map(sum, measured['confusion_matrix'])) == num_images
    assert measured['confusion_matrix'] == _in_process(folder, num_images).tolist()
