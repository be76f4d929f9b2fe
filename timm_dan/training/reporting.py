"""What a run writes besides checkpoints: metrics.jsonl, the confusion matrix and the `best/` Hub folder."""
import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from ..files import atomic_write_text
from ..hub import Metric, ModelCardInfo, save_model_folder
from ..metrics import save_confusion_matrix
from .config import TrainConfig

__all__ = ['append_metrics', 'read_metrics', 'truncate_metrics', 'write_confusion_matrix', 'export_best',
           'compact_json']

METRICS_FILE = 'metrics.jsonl'
CARD_METRICS = ('accuracy', 'mean_class_accuracy', 'macro_f1')


def append_metrics(output_dir: os.PathLike, record: dict[str, Any]) -> None:
    """Add one epoch's record to metrics.jsonl, atomically: a crash or a full disk leaves the file as it was (never
    a half line), the latter with a `DiskFullError`."""
    path = Path(output_dir) / METRICS_FILE
    before = path.read_text(encoding='utf-8') if path.is_file() else ''
    atomic_write_text(path, before + json.dumps(record) + '\n', what=f'epoch {record.get("epoch")}\'s metrics',
                      note=f'{path} keeps the epochs before it.')


def read_metrics(output_dir: os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch records of a run; a line that is not JSON is an error naming the file and line."""
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist: is {output_dir} the --output-dir of a training run?')
    records = []
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}, line {number}: not a JSON object ({e})') from e
    return records


def truncate_metrics(output_dir: os.PathLike, completed_epochs: int) -> None:
    """Drop records of epochs a resumed run will repeat (written after the checkpoint it resumes from)."""
    path = Path(output_dir) / METRICS_FILE
    if path.is_file():
        keep = [r for r in read_metrics(output_dir) if r.get('epoch', 0) <= completed_epochs]
        atomic_write_text(path, ''.join(json.dumps(r) + '\n' for r in keep), what='the resumed run\'s metrics')


def compact_json(value: Any, indent: int = 1, level: int = 0) -> str:
    """JSON for people and diffs: objects one key per line, a list of numbers or names on one line, a list of
    lists (a confusion matrix) one row per line."""
    pad, end = ' ' * indent * (level + 1), ' ' * indent * level
    if isinstance(value, dict) and value:
        items = [f'{pad}{json.dumps(str(k))}: {compact_json(v, indent, level + 1)}' for k, v in value.items()]
        return '{\n' + ',\n'.join(items) + f'\n{end}}}'
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        return '[\n' + ',\n'.join(pad + compact_json(v, indent, level + 1) for v in value) + f'\n{end}]'
    return json.dumps(value)


def write_confusion_matrix(output_dir: os.PathLike, metrics: dict[str, Any], label_names: Sequence[str],
                           title: str, stem: str = 'confusion_matrix') -> None:
    """`<stem>.json` (matrix, labels, metrics) and `<stem>.png` in `output_dir`."""
    output_dir = Path(output_dir)
    record = {'title': title, 'label_names': list(label_names), **metrics}
    atomic_write_text(output_dir / f'{stem}.json', compact_json(record) + '\n')
    save_confusion_matrix(metrics['confusion_matrix'], label_names, str(output_dir / f'{stem}.png'), title=title)


def _card_metrics(results: dict[str, dict[str, Any]], dataset: str, split_names: dict[str, str]) -> list[Metric]:
    return [
        Metric(name, 100 * values[name], dataset, split=split_names.get(role, role))
        for role, values in results.items() for name in CARD_METRICS if name in values
    ]


def export_best(
        model: nn.Module,
        output_dir: os.PathLike,
        cfg: TrainConfig,
        results: dict[str, dict[str, Any]],
        split_names: dict[str, str],
        label_names: Sequence[str],
        data_config: dict[str, Any],
        epoch: int,
) -> Path:
    """Write `output_dir/best`: config.json (label_names), model.safetensors and a card with the measured metrics.

    `results` maps a role ('validation', 'test') to its metrics; the card names the split each came from.
    """
    recipe = {
        'data': f'{cfg.dataset}, trained on split `{split_names["train"]}`, selected on {split_names["validation"]}',
        'optimizer': f'{cfg.optimizer} lr {cfg.lr}, weight decay {cfg.weight_decay} (affinity centres included)',
        'schedule': f'{cfg.scheduler}, {cfg.epochs} epochs, global batch {cfg.batch_size}; best epoch {epoch}',
        'loss': f'CE + {cfg.lambda_affinity} x affinity + {cfg.lambda_partition} x partition',
        'seed': str(cfg.seed),
    }
    if cfg.source:
        recipe['recipe source'] = cfg.source
    card = ModelCardInfo(
        model_name=f'{model.pretrained_cfg.get("architecture", cfg.model)} trained on {cfg.dataset}',
        datasets=[cfg.dataset], label_names=tuple(label_names),
        metrics=_card_metrics(results, cfg.dataset, split_names),
        architecture=model.pretrained_cfg.get('architecture', cfg.model), recipe=recipe,
        load_name=f'local-dir:{Path(output_dir) / "best"}',
        description=f'Trained with `train_scripts/train.py` (timm-dan); selected on {split_names["validation"]}.',
    )
    model_config = {'label_names': list(label_names), 'num_classes': len(label_names)}
    # a contiguous copy: safetensors stores contiguous tensors only, and the training model keeps its layout
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    return save_model_folder(model, Path(output_dir) / 'best', card=card, data_config=data_config,
                             model_config=model_config, overwrite=True)


def best_summary(results: dict[str, Optional[dict[str, Any]]]) -> dict[str, Any]:
    """The scalar metrics of each role, for the final JSON and the summary print."""
    return {role: {k: v for k, v in values.items() if k in (*CARD_METRICS, 'num_samples')}
            for role, values in results.items() if values}
