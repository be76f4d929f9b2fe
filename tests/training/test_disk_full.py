"""A full disk (ENOSPC) while a checkpoint, best/ or metrics.jsonl is written: the previous complete checkpoint and
best/ stay loadable, nothing half-written is resumed from, and the error names the path and the bytes needed.
Injected at each point of the writes, then once for real on a small tmpfs (where the machine lets a test mount one).
"""
import errno
import gc
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import timm
import torch

from timm_dan.files import DiskFullError
from timm_dan.training import checkpoint as checkpoint_module
from timm_dan.training import (
    latest_checkpoint,
    load_checkpoint,
    load_config,
    record_epoch,
    resume_or_start,
    setup_run,
    train_one_epoch,
    validate,
)
from timm_dan.training.reporting import export_best, read_metrics

pytestmark = pytest.mark.usefixtures('fresh_accelerator_state')

TINY = {'num_samples': 64, 'num_validation_samples': 16, 'image_size': 32, 'num_classes': 8, 'seed': 0}


def _run(output_dir):
    cfg = load_config(None, {'dataset_options': TINY, 'image_size': 32, 'batch_size': 16, 'num_workers': 0,
                             'epochs': 3, 'precision': 'fp32', 'ema': True, 'ema_decay': 0.9, 'lr': 0.01,
                             'output_dir': str(output_dir), 'log_every': 1, 'seed': 0, 'num_classes': 8})
    run = setup_run(cfg)
    resume_or_start(run)
    return run


def _epoch(run, epoch):
    train = train_one_epoch(run, epoch)
    val = validate(run.accelerator, run.eval_model, run.eval_loaders['validation'], run.normalize, 8)
    return train, val


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _disk_full(path):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _failing(original, suffix):
    """`original(obj, path, ...)`, except for a path ending in `suffix`: half of a file written, then ENOSPC."""
    def write(obj, path, *args, **kwargs):
        if str(path).endswith(suffix):
            Path(path).write_bytes(b'\x00' * 4096)
            raise _disk_full(path)
        return original(obj, path, *args, **kwargs)
    return write


def _inject(monkeypatch, point):
    """Make the write at `point` fail with ENOSPC, as a disk that fills there would."""
    import accelerate.checkpointing as accelerate_checkpointing
    if point in ('model.safetensors', 'optimizer.bin', 'scheduler.bin'):
        monkeypatch.setattr(accelerate_checkpointing, 'save', _failing(accelerate_checkpointing.save, point))
    elif point == 'random_states_0.pkl':
        monkeypatch.setattr(accelerate_checkpointing.torch, 'save', _failing(torch.save, point))
    elif point == 'train_state.json':
        original = Path.write_text

        def write_text(self, text, *args, **kwargs):
            if self.name == point:
                original(self, text[:10])
                raise _disk_full(self)
            return original(self, text, *args, **kwargs)
        monkeypatch.setattr(Path, 'write_text', write_text)
    elif point == 'ema.safetensors':
        monkeypatch.setattr(checkpoint_module, 'save_file', _failing(checkpoint_module.save_file, point))
    elif point == 'fsync':  # network and delayed-allocation filesystems report ENOSPC on flush
        def fsync(fd):
            raise _disk_full(f'fd {fd}')
        monkeypatch.setattr(os, 'fsync', fsync)
    else:
        raise AssertionError(point)


POINTS = ('model.safetensors', 'optimizer.bin', 'scheduler.bin', 'random_states_0.pkl', 'train_state.json',
          'ema.safetensors', 'fsync')


def test_checkpoint_survives_a_full_disk_at_every_point_of_the_write(tmp_path, monkeypatch):
    run = _run(tmp_path / 'run')
    _epoch(run, 0)
    good = run.checkpoint(1)
    before = _digest(good)
    for point in POINTS:
        run.step.optimizer_steps += 1  # a new step, as after more training
        with monkeypatch.context() as patch:
            _inject(patch, point)
            with pytest.raises(DiskFullError) as e:
                run.checkpoint(1)
        message = str(e.value)
        name = f'step_{run.step.optimizer_steps:08d}'
        assert name in message and 'no space left on device' in message, (point, message)
        assert e.value.needed > 2 * 19_000_000 * 4 and f'({e.value.needed:,} bytes)' in message, point  # weights+EMA
        assert f'The previous checkpoint {good} is intact' in message, point
        assert e.value.errno == errno.ENOSPC and e.value.filename.endswith(name)
        # nothing half-written is left or picked up; the previous checkpoint is whole and loads
        assert sorted(p.name for p in good.parent.iterdir()) == [good.name], point
        assert latest_checkpoint(good.parent) == good and _digest(good) == before, point
    state = load_checkpoint(run.accelerator, good, ema=run.ema)
    assert state['epoch'] == 1
    # and the next save, with room again, completes
    run.step.optimizer_steps += 1
    saved = run.checkpoint(1)
    assert latest_checkpoint(good.parent) == saved != good


def test_half_written_checkpoints_are_never_resumed(tmp_path):
    root = tmp_path / 'checkpoints'
    for name in ('step_00000004', 'step_00000009', '.tmp-step_00000012'):
        (root / name).mkdir(parents=True)
    (root / 'step_00000004' / 'train_state.json').write_text('{}')
    (root / '.tmp-step_00000012' / 'train_state.json').write_text('{}')
    assert latest_checkpoint(root) == root / 'step_00000004'  # step 9 lacks train_state.json, 12 is unfinished
    with pytest.raises(FileNotFoundError, match='interrupted save'):
        load_checkpoint(None, root / '.tmp-step_00000012')


def test_best_folder_and_metrics_survive_a_full_disk(tmp_path, monkeypatch):
    run = _run(tmp_path / 'run')
    train, val = _epoch(run, 0)
    assert record_epoch(run, 0, train, val)
    best, metrics = run.output_dir / 'best', run.output_dir / 'metrics.jsonl'
    best_before, metrics_before = _digest(best), metrics.read_bytes()

    train, val = _epoch(run, 1)
    val = dict(val, accuracy=2.0)  # an improvement: best/ is rewritten
    import timm_dan.hub.folder as folder_module
    with monkeypatch.context() as patch:  # the weights of best/ do not fit
        patch.setattr(folder_module.timm.models, 'save_for_hf',
                      lambda model, path, **kw: (_ for _ in ()).throw(_disk_full(Path(path) / 'model.safetensors')))
        with pytest.raises(DiskFullError) as e:
            record_epoch(run, 1, train, val)
    assert str(best) in str(e.value) and 'The previous folder there is intact' in str(e.value)
    assert e.value.needed > 19_000_000 * 4
    assert _digest(best) == best_before and sorted(p.name for p in run.output_dir.iterdir() if 'best' in p.name) == [
        'best']
    assert timm.create_model(f'local-dir:{best}', pretrained=True) is not None
    # the epoch's metrics line went in before best/: metrics.jsonl is whole (two records)
    assert [r['epoch'] for r in read_metrics(run.output_dir)] == [1, 2]

    import timm_dan.files as files_module
    real_open = open

    def half_open(path, mode='r', *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if 'w' in mode and '.metrics.jsonl.tmp' in str(path):
            f.write(b'{"epoch": 3, "lo')
            f.close()
            raise _disk_full(path)
        return f
    metrics_before = metrics.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(files_module, 'open', half_open, raising=False)
        with pytest.raises(DiskFullError) as e:
            record_epoch(run, 2, train, dict(val, accuracy=0.0))
    assert str(metrics) in str(e.value) and "epoch 3's metrics" in str(e.value)
    assert metrics.read_bytes() == metrics_before and [r['epoch'] for r in read_metrics(run.output_dir)] == [1, 2]
    assert not [p for p in run.output_dir.iterdir() if p.name.startswith('.metrics')]


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 420 MiB tmpfs: best/ and one checkpoint of the tiny run fit, a second checkpoint does not (mounting
    needs root)."""
    mount_point = tmp_path / 'small'
    mount_point.mkdir()
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=420m', 'tmpfs', str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here ({result.stderr.strip() or result.returncode}): needs root')
    try:
        yield mount_point
    finally:
        gc.collect()  # the run's last file handles and memory maps there
        subprocess.run(['umount', '--lazy', str(mount_point)], check=False)  # detached now, freed when unused


def test_real_full_filesystem(small_filesystem):
    run = _run(small_filesystem / 'run')
    train, val = _epoch(run, 0)
    record_epoch(run, 0, train, val)
    good = run.checkpoint(1)
    best_before = _digest(run.output_dir / 'best')
    size = sum(p.stat().st_size for p in good.iterdir())
    assert shutil.disk_usage(small_filesystem).free < size  # the next one cannot fit beside it

    train, val = _epoch(run, 1)
    with pytest.raises(DiskFullError) as e:  # the libraries' own disk-full errors, recognised
        run.checkpoint(2)
    assert 'step_00000008' in str(e.value) and e.value.needed >= size * 0.9
    assert latest_checkpoint(good.parent) == good and [p.name for p in good.parent.iterdir()] == [good.name]
    assert load_checkpoint(run.accelerator, good, ema=run.ema)['epoch'] == 1

    # fill what is left: neither best/ nor metrics.jsonl can be written, and both stay as they were
    filler = small_filesystem / 'filler'
    with open(filler, 'wb') as f:
        try:
            while True:
                f.write(b'\x00' * (1 << 20))
                f.flush()
        except OSError:
            pass
    metrics = (run.output_dir / 'metrics.jsonl').read_bytes()
    with pytest.raises(DiskFullError, match='metrics.jsonl: no space left on device'):
        record_epoch(run, 1, train, dict(val, accuracy=2.0))
    with pytest.raises(DiskFullError, match='best: no space left on device'):
        export_best(run.eval_model, run.output_dir, run.cfg, {'validation': val}, run.splits.split_names,
                    run.splits.label_names, run.data_config, 2)
    assert (run.output_dir / 'metrics.jsonl').read_bytes() == metrics
    assert _digest(run.output_dir / 'best') == best_before
    assert timm.create_model(f'local-dir:{run.output_dir / "best"}', pretrained=True) is not None
    filler.unlink()
    assert json.loads((good / 'train_state.json').read_text())['epoch'] == 1
