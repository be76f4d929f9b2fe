"""Crash-safe checkpoints of Accelerate states: written under a temporary name, then renamed into place.

Layout: `checkpoints/step_00001234/` holds what `accelerator.save_state` writes (model + affinity centres as
safetensors, optimizer, scheduler, RNG states of every process), plus `train_state.json` (epoch, position
within it, best metric so far) and `ema.safetensors` when an EMA is kept. Only folders named `step_*` count:
a crash mid-save leaves a `.tmp-*` folder that is ignored and cleaned up by the next save.
"""
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import torch.nn as nn
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

__all__ = ['save_checkpoint', 'load_checkpoint', 'latest_checkpoint']

_NAME = re.compile(r'^step_(\d+)$')
TRAIN_STATE = 'train_state.json'
EMA_WEIGHTS = 'ema.safetensors'


def latest_checkpoint(checkpoint_dir: os.PathLike) -> Optional[Path]:
    """The complete checkpoint with the highest step in `checkpoint_dir`, or None."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


def save_checkpoint(
        accelerator: Accelerator,
        checkpoint_dir: os.PathLike,
        step: int,
        train_state: dict[str, Any],
        ema: Optional[nn.Module] = None,
        keep: int = 2,
) -> Path:
    """Save the accelerator's state and `train_state` as `checkpoint_dir/step_{step}`, keeping the newest `keep`."""
    root = Path(checkpoint_dir)
    final = root / f'step_{step:08d}'
    tmp = root / f'.tmp-step_{step:08d}'
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob('.tmp-*'):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        (tmp / TRAIN_STATE).write_text(json.dumps(train_state, indent=1))
        if ema is not None:
            save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp / EMA_WEIGHTS))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        complete = sorted(p for p in root.iterdir() if _NAME.match(p.name))
        for old in complete[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: os.PathLike, ema: Optional[nn.Module] = None) -> dict[str, Any]:
    """Restore the accelerator's state (and the EMA) from `path`; return its `train_state`."""
    path = Path(path)
    if not (path / TRAIN_STATE).is_file():
        raise FileNotFoundError(f'{path} is not a complete training checkpoint (no {TRAIN_STATE})')
    accelerator.load_state(str(path))
    if ema is not None:
        if not (path / EMA_WEIGHTS).is_file():
            raise FileNotFoundError(f'{path} holds no EMA weights ({EMA_WEIGHTS}); resume without --ema')
        ema.load_state_dict(load_file(str(path / EMA_WEIGHTS)))
    return json.loads((path / TRAIN_STATE).read_text())
