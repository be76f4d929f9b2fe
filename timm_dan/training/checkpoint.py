"""Crash-safe checkpoints of Accelerate states: written under a temporary name, flushed, then renamed into place.

Layout: `checkpoints/step_00001234/` holds what `accelerator.save_state` writes (model + affinity centres as
safetensors, optimizer, scheduler, RNG states of every process), plus `train_state.json` (epoch, position
within it, best metric so far) and `ema.safetensors` when an EMA is kept (with `ema_buffers_<i>.safetensors`: the
BatchNorm statistics of process i's EMA, which differ between processes within an epoch). A checkpoint is complete
when its folder is named `step_*` and holds `train_state.json`: every process has finished writing into
`.tmp-step_*` and every file is on disk (fsync) before the rename. A crash, a kill or a full disk mid-save leaves at
most a `.tmp-*` folder, which is never resumed from and is removed (on failure at once, after a kill by the next
save). The previous checkpoints are removed only after the new one is complete. A failed save fails on every process
together (no process is left waiting for the others), with a `DiskFullError` naming the path and the bytes needed
when the disk is full.
"""
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn
from accelerate import Accelerator
from accelerate.utils import gather_object
from safetensors.torch import load_file, save_file

from ..files import disk_full_error, fsync_tree, tree_bytes

__all__ = ['save_checkpoint', 'load_checkpoint', 'latest_checkpoint', 'CheckpointError']

_NAME = re.compile(r'^step_(\d+)$')
TRAIN_STATE = 'train_state.json'
EMA_WEIGHTS = 'ema.safetensors'
EMA_BUFFERS = 'ema_buffers_{}.safetensors'  # process i > 0: its EMA's BatchNorm statistics, which are per process


class CheckpointError(RuntimeError):
    """Writing a checkpoint failed (on this process or another one); the previous checkpoints are intact."""


def latest_checkpoint(checkpoint_dir: os.PathLike) -> Optional[Path]:
    """The complete checkpoint (a `step_N` folder holding train_state.json) with the highest step, or None."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _NAME.match(p.name)) and (p / TRAIN_STATE).is_file()]
    return max(found)[1] if found else None


def _state_bytes(accelerator: Accelerator, ema: Optional[nn.Module]) -> int:
    """What the tensors of a checkpoint weigh: the prepared models, the optimizer states and the EMA."""
    tensors = [t for model in accelerator._models for t in model.state_dict().values()]
    for optimizer in accelerator._optimizers:
        tensors += [v for state in optimizer.state_dict()['state'].values() for v in state.values()]
    if ema is not None:
        tensors += list(ema.state_dict().values())
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def _fail_together(accelerator: Accelerator, error: Optional[BaseException], tmp: Path, root: Path,
                   needed: int) -> None:
    """Every process learns whether any failed; then all raise (the main process having removed `tmp`)."""
    report = None
    if error is not None:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # first: the room it took counts as free in the message
        previous = latest_checkpoint(root)
        note = (f'The previous checkpoint {previous or "(none yet)"} is intact; free some space, then continue '
                f'with --resume auto.')
        report = disk_full_error(error, tmp.parent / tmp.name.removeprefix('.tmp-'), needed, 'a checkpoint', note)
        report = report or CheckpointError(f'writing checkpoint {tmp.name.removeprefix(".tmp-")} in {root} failed '
                                           f'on process {accelerator.process_index}: {type(error).__name__}: {error}')
    reports = gather_object([report])
    failed = [r for r in reports if r is not None]
    if not failed:
        return
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    if error is not None:
        raise report from error
    raise failed[0]


def save_checkpoint(
        accelerator: Accelerator,
        checkpoint_dir: os.PathLike,
        step: int,
        train_state: dict[str, Any],
        ema: Optional[nn.Module] = None,
        keep: int = 2,
) -> Path:
    """Save the accelerator's state and `train_state` as `checkpoint_dir/step_{step}`, keeping the newest `keep`.

    Every process calls it. Raises `DiskFullError` (the disk is full: path, bytes needed, bytes free) or
    `CheckpointError` on every process when writing failed on any; nothing incomplete is left behind.
    """
    root = Path(checkpoint_dir)
    final = root / f'step_{step:08d}'
    tmp = root / f'.tmp-step_{step:08d}'
    needed = max(_state_bytes(accelerator, ema), tree_bytes(latest_checkpoint(root) or root / '-'))
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob('.tmp-*'):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    error = None
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
        if ema is not None and not accelerator.is_main_process:
            save_file(_ema_buffers(ema), str(tmp / EMA_BUFFERS.format(accelerator.process_index)))
    except Exception as e:  # the disk, or anything else: every process must hear of it
        error = e
    _fail_together(accelerator, error, tmp, root, needed)  # also: every process's RNG state is written
    if accelerator.is_main_process:
        try:
            (tmp / TRAIN_STATE).write_text(json.dumps(train_state, indent=1))
            if ema is not None:
                save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp / EMA_WEIGHTS))
            fsync_tree(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_tree(root)
        except Exception as e:
            error = e
    _fail_together(accelerator, error, tmp, root, needed)
    if accelerator.is_main_process:
        complete = sorted(p for p in root.iterdir() if _NAME.match(p.name))
        for old in complete[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: os.PathLike, ema: Optional[nn.Module] = None) -> dict[str, Any]:
    """Restore the accelerator's state (and the EMA) from `path`; return its `train_state`."""
    path = Path(path)
    if path.name.startswith('.tmp-') or not (path / TRAIN_STATE).is_file():
        raise FileNotFoundError(f'{path} is not a complete training checkpoint (no {TRAIN_STATE}, or an interrupted '
                                f'save); use the newest complete one: --resume auto')
    accelerator.load_state(str(path))
    if ema is not None:
        if not (path / EMA_WEIGHTS).is_file():
            raise FileNotFoundError(f'{path} holds no EMA weights ({EMA_WEIGHTS}); resume without --ema')
        ema.load_state_dict(load_file(str(path / EMA_WEIGHTS)))
        own = path / EMA_BUFFERS.format(accelerator.process_index)
        if not accelerator.is_main_process and own.is_file():  # (absent when the process count changed)
            ema.load_state_dict(load_file(str(own)), strict=False)
    return json.loads((path / TRAIN_STATE).read_text())


def _ema_buffers(ema: nn.Module) -> dict[str, torch.Tensor]:
    """The EMA's buffers (BatchNorm running statistics): each process keeps its own, from its own batches, until
    they are averaged at the end of the epoch, so a mid-epoch checkpoint keeps every process's."""
    names = {name for name, _ in ema.named_buffers()}
    return {k: v.contiguous() for k, v in ema.state_dict().items() if k in names}

