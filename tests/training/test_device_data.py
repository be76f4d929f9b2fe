"""The device pipeline in training: the `device_data` flag and what it picks, the same batches after a resume (under
Accelerate) and across two processes, and train.py / validate.py end to end with `--device-data on`."""
import json
import shutil
import subprocess
import sys

import pytest
import torch

from tests.training.test_train_script import REPO, TINY, _final_weights, _train
from timm_dan.data import decode_to_arrow, load_fer_dataset
from timm_dan.training import ConfigError, TrainConfig, parse_config
from timm_dan.training.data import create_device_loader, load_device_splits, wants_device_data

pytestmark = pytest.mark.usefixtures('fresh_accelerator_state')

CFG = {'input_size': (3, 32, 32), 'mean': (0.5, 0.5, 0.5), 'std': (0.25, 0.25, 0.25), 'interpolation': 'bilinear'}


@pytest.fixture
def splits(tmp_path):
    data = load_fer_dataset('synthetic', num_samples=48, num_validation_samples=12, image_size=40, seed=0,
                            cache_dir=str(tmp_path))
    return {'train': decode_to_arrow(data['train']), 'validation': decode_to_arrow(data['validation'])}


def test_the_flag_and_what_it_picks(splits):
    assert TrainConfig().device_data == 'auto' and parse_config(['--device-data', 'on']).device_data == 'on'
    with pytest.raises(SystemExit):
        parse_config(['--device-data', 'gpu'])
    assert [wants_device_data(mode, device) for mode, device in
            (('auto', 'cpu'), ('auto', 'cuda'), ('on', 'cpu'), ('off', 'cuda'))] == [False, True, True, False]
    with pytest.raises(ConfigError, match='device_data must be one of auto, on, off'):
        wants_device_data('yes', 'cpu')

    none, note = load_device_splits('auto', splits, CFG, 'cpu')
    assert none is None and 'DataLoader workers' in note and 'cpu is not a CUDA device' in note
    on, note = load_device_splits('on', splits, CFG, 'cpu')
    assert set(on) == {'train', 'validation'} and all(split.resident for split in on.values())
    assert note == ('Data: the decoded images resident on cpu (train 48 at 40x40, validation 12 at 40x40: 0.3 MiB), '
                    'augmented there')
    with pytest.warns(UserWarning, match=r'the decoded splits \(0.3 MiB\) do not fit in the 0.0 MiB the data may '
                                         r'take on cpu: streaming each batch from pinned host memory'):
        streamed, note = load_device_splits('on', splits, CFG, 'cpu', memory_limit=1000)
    assert not any(split.resident for split in streamed.values()) and 'streamed to cpu from pinned host' in note
    with pytest.warns(UserWarning, match='streaming'):  # another process does not fit: all of them stream
        streamed, _ = load_device_splits('on', splits, CFG, 'cpu', agree=lambda fits: False)
    assert not streamed['train'].resident


def _prepared(accelerator, splits, recipe, balanced=False, batch_size=8):
    """A prepared training loader of the device pipeline, and its sampler and dataset (as `TrainRun.epoch_seeded`)."""
    device_splits, _ = load_device_splits('on', splits, CFG, 'cpu')
    loader = create_device_loader(device_splits['train'], CFG, batch_size, is_training=True, recipe=recipe, seed=5,
                                  balanced_sampler=balanced)
    return accelerator.prepare(loader), (loader.sampler, loader.dataset)


def _epoch(loader, seeded, epoch):
    """One epoch's batches, the epoch set as `train_one_epoch` sets it."""
    loader.set_epoch(epoch)
    for each in seeded:
        each.set_epoch(epoch)
    return [(images.clone(), labels.clone()) for images, labels in loader]


@pytest.mark.parametrize('balanced', [False, True])
def test_the_same_batches_after_a_resume(splits, balanced):
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=True)

    full = _epoch(*_prepared(accelerator, splits, 'affectnet', balanced), 1)
    assert len(full) == 6 and full[0][0].shape == (8, 3, 32, 32) and full[0][0].dtype == torch.float32
    loader, seeded = _prepared(accelerator, splits, 'affectnet', balanced)  # what a resumed run builds
    resumed = _epoch(accelerator.skip_first_batches(loader, 4), seeded, 1)
    assert len(resumed) == 2
    for (x, y), (x_again, y_again) in zip(full[4:], resumed, strict=True):
        assert torch.equal(x, x_again) and torch.equal(y, y_again)
    assert not torch.equal(full[0][0], _epoch(*_prepared(accelerator, splits, 'affectnet', balanced), 2)[0][0])
    if balanced:  # drawn with replacement: a row drawn twice in an epoch is augmented twice differently
        sampler = _prepared(accelerator, splits, 'affectnet', balanced)[1][0]
        sampler.set_epoch(1)
        draws = [index for _, index in sampler]
        first, second = next((i, j) for i in range(48) for j in range(i + 1, 48) if draws[i] == draws[j])
        images = torch.cat([x for x, _ in full])
        assert not torch.equal(images[first], images[second])


def _sharded_batches(out_dir, cache_dir):
    """One process's epoch of a 2-process run (`accelerate launch`, below)."""
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=True)
    data = load_fer_dataset('synthetic', num_samples=48, num_validation_samples=12, image_size=40, seed=0,
                            cache_dir=cache_dir)
    with accelerator.main_process_first():
        splits = {'train': decode_to_arrow(data['train'])}
    torch.save(_epoch(*_prepared(accelerator, splits, 'rafdb', batch_size=4), 1),
               f'{out_dir}/rank{accelerator.process_index}.pt')


@pytest.mark.slow
def test_two_processes_share_out_the_batches_of_one(splits, tmp_path, subprocess_env):
    """Accelerate deals the batches out in turn; each is augmented as in a single process (seeded by its draw).
    Launched as train.py is (fresh processes: a forked child of this one could hang in the OpenMP pool it holds)."""
    from accelerate import Accelerator
    script = tmp_path / 'sharded.py'
    script.write_text('import sys\nfrom tests.training.test_device_data import _sharded_batches\n'
                      '_sharded_batches(sys.argv[1], sys.argv[2])\n')
    env = dict(subprocess_env, ACCELERATE_USE_CPU='1', OMP_NUM_THREADS='1')
    command = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2',
               '--num_machines', '1', '--main_process_port', '29534', '--dynamo_backend', 'no', '--mixed_precision',
               'no', str(script), str(tmp_path), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    single = _epoch(*_prepared(Accelerator(cpu=True), {'train': splits['train']}, 'rafdb', batch_size=4), 1)
    assert len(single) == 12 and [len(r) for r in ranks] == [6, 6]
    for rank, batches in enumerate(ranks):
        for (x, y), (x_single, y_single) in zip(batches, single[rank::2], strict=True):
            assert torch.equal(x, x_single) and torch.equal(y, y_single)


@pytest.mark.slow
def test_train_and_validate_with_the_data_on_the_device_resume_identically(tmp_path, subprocess_env):
    subprocess_env = dict(subprocess_env, OMP_NUM_THREADS='1')
    common = ['--seed', '3', '--deterministic', '--checkpoint-steps', '3', '--keep-checkpoints', '10', '--lr', '0.01',
              '--ema', '--ema-decay', '0.9', '--device-data', 'on']
    full = tmp_path / 'full'
    result = _train(subprocess_env, full, *common)  # 4 steps per epoch, 2 epochs
    assert 'Data: the decoded images resident on cpu (train 64 at 32x32, validation 33 at 32x32' in result.stdout

    resumed = tmp_path / 'resumed'  # as if killed after step 6 (mid epoch 2): its checkpoints up to there
    shutil.copytree(full, resumed)
    for late in ('step_00000007', 'step_00000008'):
        shutil.rmtree(resumed / 'checkpoints' / late, ignore_errors=True)
    result = _train(subprocess_env, resumed, *common, '--resume')
    assert 'Resumed from' in result.stdout and 'step_00000006' in result.stdout
    (name_full, weights_full), (name_resumed, weights_resumed) = _final_weights(full), _final_weights(resumed)
    assert name_full == name_resumed == 'step_00000008'
    for key in weights_full:
        assert torch.equal(weights_full[key], weights_resumed[key]), key

    reports = {}
    for mode in ('on', 'off'):  # the same images, resized and normalised on the device or by the workers
        reports[mode] = tmp_path / f'validation-{mode}.json'
        command = [sys.executable, 'train_scripts/validate.py', '--model', f'local-dir:{full / "best"}', '--dataset',
                   'synthetic', '--dataset-options', TINY, '--split', 'validation', '--num-workers', '0',
                   '--device-data', mode, '--output-json', str(reports[mode])]
        done = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=300, cwd=REPO)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    on, off = (json.loads(report.read_text()) for report in reports.values())
    assert on['num_samples'] == off['num_samples'] == 33
    assert on['confusion_matrix'] == off['confusion_matrix'] and on['accuracy'] == off['accuracy']
    results = json.loads((full / 'results.json').read_text())
    assert on['accuracy'] == pytest.approx(results['validation']['accuracy'])


def test_valence_arousal_targets_ride_with_the_labels_on_the_device(splits):
    """With va_head, the device pipeline's batches carry each drawn image's valence/arousal (NaN where unknown, as
    the DataLoader pipeline's FERBatch has it) after its labels, in training and evaluation, and `predict` reads
    them as it reads the DataLoader pipeline's."""
    import timm
    from accelerate import Accelerator

    from timm_dan.training import predict
    from timm_dan.training.data import VA_COLUMNS, create_run_loaders
    splits = {role: split.map(lambda example, i: {'valence': None if i == 1 else example['valence']},
                              with_indices=True) for role, split in splits.items()}  # AffectNet's -2
    cfg = TrainConfig(dataset='synthetic', va_head=True, device_data='on', num_workers=0, seed=5)
    loaders = create_run_loaders(cfg, splits, CFG, 8, 'cpu')
    assert loaders.note.startswith('Data: the decoded images resident on cpu')
    for role, split in splits.items():
        expected = torch.tensor([[float('nan') if v is None else v for v in pair] for pair in
                                 zip(split['valence'], split['arousal'], strict=True)])
        assert expected[1, 0].isnan() and not expected.isnan().all()
        loader = loaders.train if role == 'train' else loaders.evaluation[role]
        order = ([index for _, index in loader.sampler] if role == 'train' else list(range(len(split))))
        batches = list(loader)
        assert all(len(batch) == 3 for batch in batches)
        images, labels, va = (torch.cat(parts) for parts in zip(*batches, strict=True))
        assert images.shape[0] == len(order) and va.shape == (len(order), 2)
        torch.testing.assert_close(va, expected[order], equal_nan=True)
        assert torch.equal(labels, torch.tensor(split['label'])[order])

    off = create_run_loaders(TrainConfig(dataset='synthetic', va_head=True, device_data='off', num_workers=0),
                             splits, CFG, 8, 'cpu')
    no_va = create_run_loaders(TrainConfig(dataset='synthetic', device_data='on', num_workers=0), splits, CFG, 8,
                               'cpu')
    assert len(next(iter(no_va.evaluation['validation']))) == 2  # no head: no targets to carry
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(timm.create_model('dan_resnet18', num_classes=8, va_head=True).eval())
    outputs = [predict(accelerator, model, accelerator.prepare(run.evaluation['validation']), run.normalize)
               for run in (loaders, off)]
    assert set(outputs[0]) == set(outputs[1]) >= {'valence_arousal', 'va_references'}
    torch.testing.assert_close(outputs[0]['va_references'], outputs[1]['va_references'], equal_nan=True)
    assert torch.equal(outputs[0]['references'], outputs[1]['references'])
    torch.testing.assert_close(outputs[0]['valence_arousal'], outputs[1]['valence_arousal'], atol=1e-4, rtol=0)
    assert VA_COLUMNS == ('valence', 'arousal')
