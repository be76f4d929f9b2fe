"""Training with the valence/arousal head, calibration after training (never on test), accuracy per group; and
train_scripts/validate.py's --calibrate and --group-by, end to end on tiny fixture trees."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image

from timm_dan.data import DeviceNormalize, load_fer_dataset
from timm_dan.metrics import fit_temperature
from timm_dan.training import (
    ConfigError,
    DANTrainModule,
    TrainConfig,
    TrainStep,
    compute_metrics,
    create_loss,
    create_optimizer,
    create_train_model,
    load_config,
    predict,
)
from timm_dan.training.config import _FIELDS
from timm_dan.training.data import VA_COLUMNS, create_loader, load_splits
from timm_dan.training.reporting import calibrate_outputs, measure_groups

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'train_scripts' / 'configs'

pytestmark = pytest.mark.usefixtures('fresh_accelerator_state')


def test_config_keys_sections_and_shipped_va_recipes():
    assert _FIELDS['va_head'].metadata['section'] == 'model'
    assert _FIELDS['lambda_va'].metadata['section'] == 'loss'
    assert _FIELDS['calibrate'].metadata['section'] == 'run'
    defaults = TrainConfig()
    assert (defaults.va_head, defaults.lambda_va, defaults.calibrate) == (False, 1.0, True)
    for k in (7, 8):
        cfg = load_config(CONFIGS / f'affectnet{k}_va.yaml')
        plain = load_config(CONFIGS / f'affectnet{k}.yaml')
        assert cfg.va_head and cfg.lambda_va == 1.0 and cfg.source and cfg.target
        # the authors' recipe otherwise
        differing = {f for f in _FIELDS if getattr(cfg, f) != getattr(plain, f)}
        assert differing == {'va_head', 'target'}
    demo = load_config(CONFIGS / 'synthetic.yaml')
    assert demo.va_head and demo.lambda_va == 1.0


def test_va_head_model_loss_and_data_checks(tmp_path):
    cfg = TrainConfig(num_classes=8, va_head=True, lambda_va=0.5, dataset_options={
        'num_samples': 16, 'num_validation_samples': 8, 'image_size': 32})
    model = create_train_model(cfg)
    assert model.has_va and create_loss(cfg, model).lambda_va == 0.5
    assert set(VA_COLUMNS) <= set(load_splits(cfg)['validation'].column_names)
    root = tmp_path / 'RAF-DB' / 'basic'  # a data set without valence/arousal
    (root / 'EmoLabel').mkdir(parents=True)
    (root / 'Image' / 'aligned').mkdir(parents=True)
    lines = []
    for i in range(14):
        name = f'{"train" if i < 7 else "test"}_{i:05d}.jpg'
        lines.append(f'{name} {i % 7 + 1}')
        Image.new('RGB', (8, 8)).save(root / 'Image' / 'aligned' / name.replace('.jpg', '_aligned.jpg'))
    (root / 'EmoLabel' / 'list_patition_label.txt').write_text('\n'.join(lines))
    with pytest.raises(ConfigError, match='va_head needs valence and arousal, but rafdb'):
        load_splits(TrainConfig(dataset='rafdb', data_dir=str(root), num_classes=7, va_head=True,
                                val_split='test', cache_decoded=False))


def _setup(tmp_path, n=24):
    data = load_fer_dataset('synthetic', num_samples=n, num_validation_samples=n, image_size=32, seed=0,
                            cache_dir=str(tmp_path))
    data_config = {'input_size': (3, 32, 32), 'mean': (0.5,) * 3, 'std': (0.25,) * 3, 'interpolation': 'bilinear'}
    cfg = TrainConfig(num_classes=8, va_head=True, optimizer='sgd', lr=0.01)
    model = create_train_model(cfg)
    loss_fn = create_loss(cfg, model)
    accelerator = Accelerator(cpu=True, mixed_precision='no')
    module, optimizer = accelerator.prepare(DANTrainModule(model, loss_fn), create_optimizer(cfg, model, loss_fn))
    return data, data_config, accelerator, module, optimizer


def test_train_step_trains_the_va_head_and_validation_measures_it(tmp_path):
    torch.manual_seed(0)
    data, data_config, accelerator, module, optimizer = _setup(tmp_path)
    normalize = DeviceNormalize(data_config)
    step = TrainStep(accelerator, module, optimizer, channels_last=False)
    loader = create_loader(data['train'], data_config, 8, is_training=True, num_workers=0, columns=VA_COLUMNS)
    head = module.model.va_head.fc.weight.detach().clone()
    for batch in loader:
        images, labels = normalize(batch)
        parts = step(images, labels, batch.valence_arousal)
        assert parts.va is not None and parts.va > 0
    losses = step.read_losses()
    assert losses['va'] > 0 and losses['loss'] > losses['ce']
    assert not torch.equal(module.model.va_head.fc.weight, head)

    eval_loader = accelerator.prepare(create_loader(data['validation'], data_config, 10, is_training=False,
                                                    num_workers=0, columns=VA_COLUMNS))
    outputs = predict(accelerator, module.model, eval_loader, normalize, channels_last=False)
    assert outputs['valence_arousal'].shape == (24, 2) and outputs['logits'].shape == (24, 8)
    expected = torch.tensor([data['validation']['valence'], data['validation']['arousal']]).T
    torch.testing.assert_close(outputs['va_references'], expected)  # in the data set's order
    metrics = compute_metrics(outputs, 8, calibrate=True)
    for key in ('valence_ccc', 'arousal_ccc', 'valence_rmse', 'arousal_sagr', 'ece', 'nll', 'temperature',
                'ece_calibrated', 'nll_calibrated'):
        assert math.isfinite(metrics[key]), key
    assert metrics['num_va_samples'] == 24 and metrics['nll_calibrated'] <= metrics['nll'] + 1e-9


def test_old_checkpoint_loss_sums_still_load(tmp_path):
    _, _, accelerator, module, optimizer = _setup(tmp_path, n=8)
    step = TrainStep(accelerator, module, optimizer, channels_last=False)
    step.load_state_dict({'micro_step': 3, 'optimizer_steps': 3, 'skipped_steps': 0,
                          'loss_sums': [6.0, 3.0, 2.0, 1.0, 3.0]})  # before the V/A loss: four sums and the count
    assert step.read_losses() == {'loss': 2.0, 'ce': 1.0, 'affinity': 2 / 3, 'partition': 1 / 3, 'va': 0.0}


def _outputs(logits, labels):
    logits = torch.as_tensor(logits, dtype=torch.float32)
    return {'logits': logits, 'references': torch.as_tensor(labels), 'predictions': logits.argmax(1)}


def test_the_temperature_is_fitted_on_validation_never_on_test():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    validation = rng.normal(0, 1, (400, 4))
    validation[np.arange(400), labels] += 2.0
    test = validation * 6  # a different scale: its own best temperature is far from validation's
    calibration = calibrate_outputs({'validation': _outputs(validation, labels), 'test': _outputs(test, labels)},
                                    {'validation': 'train (10% hold-out)', 'test': 'test'})
    assert calibration['temperature'] == pytest.approx(fit_temperature(validation, labels), rel=1e-6)
    assert calibration['temperature'] != pytest.approx(fit_temperature(test, labels), rel=0.1)
    assert calibration['fitted_on'] == 'train (10% hold-out)'
    again = calibrate_outputs({'validation': _outputs(validation, labels), 'test': _outputs(test * 3, labels)},
                              {'validation': 'v', 'test': 'test'})
    assert again['temperature'] == calibration['temperature']  # the test split's logits play no part
    with pytest.raises(KeyError):
        calibrate_outputs({'test': _outputs(test, labels)}, {'test': 'test'})
    entry = calibration['splits']['test']
    assert set(entry) == {'split', 'before', 'after'} and len(entry['after']['reliability']['count']) == 15


def _rafdb_with_manual(root: Path) -> Path:
    """RAF-DB basic with its manual annotations, in the distributed layout: 7 classes x (6 train + 4 test)."""
    lines = []
    (root / 'Image' / 'aligned').mkdir(parents=True)
    (root / 'EmoLabel').mkdir()
    (root / 'Annotation' / 'manual').mkdir(parents=True)
    for split, count in (('train', 6), ('test', 4)):
        for i in range(7 * count):
            stem = f'{split}_{i + 1:05d}'
            lines.append(f'{stem}.jpg {i % 7 + 1}')
            color = (30 * (i % 7), 255 - 30 * (i % 7), 128)
            Image.new('RGB', (100, 100), color).save(root / 'Image' / 'aligned' / f'{stem}_aligned.jpg')
            gender, race, age = i % 2, i % 3, 1 + i % 3
            (root / 'Annotation' / 'manual' / f'{stem}_manu_attri.txt').write_text(
                '40.5\t42.0\n60.1\t41.7\n50.0\t55.2\n42.3\t70.8\n58.8\t70.1\n' + f'{gender}\n{race}\n{age}\n')
    (root / 'EmoLabel' / 'list_patition_label.txt').write_text('\n'.join(lines) + '\n')
    return root


def test_measure_groups_uses_the_split_order_and_class_label_names(tmp_path):
    data = load_fer_dataset('rafdb', _rafdb_with_manual(tmp_path / 'basic'), cache_dir=str(tmp_path / 'c'))['test']
    labels = torch.tensor(data['label'])
    predictions = torch.where(torch.tensor(data['gender']) == 0, labels, (labels + 1) % 7)  # right for men only
    groups = measure_groups({'predictions': predictions, 'references': labels}, data, 7)
    assert set(groups) == {'gender', 'race', 'age'}
    assert groups['gender']['groups']['male']['accuracy'] == 1.0
    assert groups['gender']['groups']['female']['accuracy'] == 0.0
    assert groups['gender']['groups']['unsure'] == {'num_samples': 0}
    assert groups['gender']['largest_gap']['accuracy']['value'] == 1.0
    assert sum(g['num_samples'] for g in groups['age']['groups'].values()) == len(data)
    with pytest.raises(ValueError, match="no column 'site' to group by"):
        measure_groups({'predictions': predictions, 'references': labels}, data, 7, ['site'])


def _run(cmd, env, timeout=400):
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return result


@pytest.mark.slow
def test_training_calibrates_on_the_hold_out_and_reports_groups_then_validate_reuses_it(tmp_path, subprocess_env):
    env = dict(subprocess_env, OMP_NUM_THREADS='1')
    data = _rafdb_with_manual(tmp_path / 'RAF-DB' / 'basic')
    out = tmp_path / 'rafdb'
    result = _run([sys.executable, 'train_scripts/train.py', '--config', 'train_scripts/configs/rafdb.yaml',
                   '--data-dir', str(data), '--output-dir', str(out), '--backbone-pretrained', 'none', '--epochs',
                   '2', '--batch-size', '8', '--image-size', '32', '--num-workers', '0', '--val-fraction', '0.34'],
                  env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((out / 'results.json').read_text())
    calibration = results['calibration']
    assert calibration['fitted_on'].startswith('train (34% stratified hold-out')  # never test
    assert set(calibration['splits']) == {'validation', 'test'}
    temperature = calibration['temperature']
    # the best epoch's record fitted the same temperature on the same hold-out, with the same weights
    records = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    best = next(r for r in records if r['epoch'] == results['best_epoch'])
    assert best['validation']['temperature'] == pytest.approx(temperature, rel=1e-4)
    assert all({'ece', 'nll', 'ece_calibrated', 'nll_calibrated'} <= set(r['validation']) for r in records)
    assert json.loads((out / 'best' / 'config.json').read_text())['model_args']['temperature'] == temperature
    for name in ('reliability.png', 'reliability_test.png', 'confusion_matrix.png'):
        assert (out / name).stat().st_size > 5000, name
    groups = results['groups']
    assert groups['split'] == 'test' and set(groups) == {'split', 'gender', 'race', 'age'}
    assert sum(g['num_samples'] for g in groups['race']['groups'].values()) == results['test']['num_samples'] == 28
    card = (out / 'best' / 'README.md').read_text()
    assert '## Calibration' in card and f'T = {temperature:.4f}' in card
    bias = card.split('## Bias, risks and limitations')[1]
    assert 'Accuracy per group on rafdb test' in bias and '| gender: male |' in bias and '| race: Asian |' in bias
    assert 'Largest gaps between groups: gender, accuracy: ' in bias
    assert 'has not been measured' not in bias
    assert 'type: ece' in card.split('---')[1]  # the model-index reports the test ECE

    # validate.py: the per-group figures and a calibration that refuses the test split
    common = [sys.executable, 'train_scripts/validate.py', '--model', f'local-dir:{out / "best"}', '--dataset',
              'rafdb', '--data-dir', str(data), '--num-workers', '0', '--split', 'test']
    refused = _run(common + ['--calibrate', '--calibration-split', 'test'], env)
    assert refused.returncode != 0 and 'never fitted on the evaluated split nor on a test split' in refused.stderr
    report = tmp_path / 'eval' / 'test.json'
    copy = tmp_path / 'calibrated'
    evaluated = _run(common + ['--group-by', 'gender', 'race', 'age', '--calibrate', '--calibration-split', 'train',
                               '--calibration-fraction', '0.5', '--calibrated-output', str(copy), '--output-json',
                               str(report)], env)
    assert evaluated.returncode == 0, evaluated.stdout[-3000:] + evaluated.stderr[-3000:]
    assert f'into {copy}/config.json (a copy;' in evaluated.stdout
    measured = json.loads(report.read_text())
    assert measured['accuracy'] == pytest.approx(results['test']['accuracy'])
    for column in ('gender', 'race', 'age'):
        for name, entry in groups[column]['groups'].items():
            assert measured['groups'][column]['groups'][name] == pytest.approx(entry), (column, name)
    new_t = measured['calibration']['temperature']
    assert measured['calibration']['fitted_on'] == 'train (50% stratified hold-out, seed 42)'
    assert json.loads((copy / 'config.json').read_text())['model_args']['temperature'] == new_t
    assert json.loads((out / 'best' / 'config.json').read_text())['model_args']['temperature'] == temperature
    assert f'T = {new_t:.4f}' in (copy / 'README.md').read_text()
    assert '| gender: male |' in (copy / 'README.md').read_text()
    assert 'has not been measured' not in (copy / 'README.md').read_text()
    assert (tmp_path / 'eval' / 'test_reliability.png').stat().st_size > 5000
    assert '| race: Caucasian |' in evaluated.stdout and 'Largest gaps between groups' in evaluated.stdout

    # in place
    in_place = _run(common + ['--calibrate', '--calibration-split', 'train', '--calibration-fraction', '0.5'], env)
    assert in_place.returncode == 0, in_place.stderr[-3000:]
    assert f'{out / "best"}/config.json (in place)' in in_place.stdout
    assert json.loads((out / 'best' / 'config.json').read_text())['model_args']['temperature'] == pytest.approx(
        new_t, rel=1e-6)


@pytest.mark.slow
def test_demo_config_trains_and_exports_the_va_head(tmp_path, subprocess_env):
    env = dict(subprocess_env, OMP_NUM_THREADS='1')
    out = tmp_path / 'demo'
    result = _run([sys.executable, 'train_scripts/train.py', '--output-dir', str(out), '--dataset-options',
                   '{num_samples: 64, num_validation_samples: 32, image_size: 32, num_classes: 8, seed: 0}',
                   '--image-size', '32', '--batch-size', '16', '--num-workers', '0', '--epochs', '1'], env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'Valence/arousal head on' in result.stdout and 'valence CCC' in result.stdout
    record = json.loads((out / 'metrics.jsonl').read_text().splitlines()[0])
    assert record['train_va'] > 0 and record['validation']['num_va_samples'] == 32
    results = json.loads((out / 'results.json').read_text())
    assert {'valence_ccc', 'arousal_ccc', 'valence_rmse', 'arousal_sagr'} <= set(results['validation'])
    config = json.loads((out / 'best' / 'config.json').read_text())
    assert config['model_args']['va_head'] is True
    card = (out / 'best' / 'README.md').read_text()
    # the synthetic set is no Hub data set: no model-index (issue 17); the V/A figures are in the Evaluation table
    assert 'model-index' not in card and '## Valence and arousal' in card
    assert '| Valence CCC |' in card and '| Arousal sign agreement (SAGR) |' in card
