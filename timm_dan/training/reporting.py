"""What a run writes besides checkpoints: metrics.jsonl, the confusion matrix, the reliability diagrams and the
`best/` Hub folder; the calibration and the accuracy per group of the selected weights."""
import copy
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn
from datasets import Dataset

from ..files import atomic_write_text
from ..hub import Metric, ModelCardInfo, save_model_folder
from ..metrics import (
    NUM_BINS,
    calibration_metrics,
    fit_temperature,
    group_metrics,
    save_confusion_matrix,
    save_reliability_diagram,
)
from .config import TrainConfig
from .data import group_columns

__all__ = ['append_metrics', 'read_metrics', 'truncate_metrics', 'write_confusion_matrix', 'export_best',
           'compact_json', 'calibrate_outputs', 'write_reliability_diagram', 'measure_groups', 'calibration_summary',
           'write_temperature']

METRICS_FILE = 'metrics.jsonl'
CARD_METRICS = ('accuracy', 'mean_class_accuracy', 'macro_f1')
VA_CARD_METRICS = tuple(f'{d}_{m}' for d in ('valence', 'arousal') for m in ('ccc', 'pcc', 'rmse', 'sagr'))
"""Valence/arousal metrics on cards (as they are, not in percent)."""


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


def calibrate_outputs(outputs: Mapping[str, Mapping[str, torch.Tensor]], split_names: Mapping[str, str],
                      num_bins: int = NUM_BINS, temperature: Optional[float] = None) -> dict[str, Any]:
    """Fit the temperature on the `validation` role's logits (never another role's; or take `temperature`), then
    ECE and NLL before and after it on every role of `outputs` (`predict` outputs by role), with the reliability
    bins.

    Returns {'temperature', 'fitted_on', 'num_bins', 'splits': {role: {'split', 'before': {'ece', 'nll',
    'reliability'}, 'after': {...}}}}.
    """
    if temperature is None:
        fitted = outputs['validation']
        temperature = fit_temperature(fitted['logits'].numpy(), fitted['references'].numpy())
    per_role = {}
    for role, out in outputs.items():
        logits, labels = out['logits'].numpy(), out['references'].numpy()
        per_role[role] = {'split': split_names.get(role, role),
                          'before': calibration_metrics(logits, labels, None, num_bins),
                          'after': calibration_metrics(logits, labels, temperature, num_bins)}
    return {'temperature': temperature, 'fitted_on': split_names.get('validation', 'validation'),
            'num_bins': num_bins, 'splits': per_role}


def calibration_summary(calibration: Mapping[str, Any]) -> dict[str, Any]:
    """The calibration without its reliability bins (for metrics.jsonl, results.json and cards)."""
    return {**calibration, 'splits': {
        role: {key: value if key == 'split' else {k: v for k, v in value.items() if k != 'reliability'}
               for key, value in entry.items()}
        for role, entry in calibration['splits'].items()}}


def write_reliability_diagram(output_dir: os.PathLike, calibration: Mapping[str, Any], role: str, title: str,
                              stem: Optional[str] = None) -> Path:
    """`<stem>.png` / `.json` (default `reliability` for the validation role, `reliability_<role>` for the others):
    accuracy against confidence before and after the temperature, beside the confusion matrix."""
    output_dir = Path(output_dir)
    entry = calibration['splits'][role]
    stem = stem or ('reliability' if role == 'validation' else f'reliability_{role}')
    after = f'after, T = {calibration["temperature"]:.2f}'
    curves = {'before': entry['before']['reliability'], after: entry['after']['reliability']}
    ece = {'before': entry['before']['ece'], after: entry['after']['ece']}
    fitted = ' (the split T was fitted on)' if role == 'validation' else f' (T fitted on {calibration["fitted_on"]})'
    save_reliability_diagram(curves, str(output_dir / f'{stem}.png'), title=title + fitted, ece=ece)
    record = {'title': title, 'temperature': calibration['temperature'], 'fitted_on': calibration['fitted_on'],
              'num_bins': calibration['num_bins'], **entry}
    (output_dir / f'{stem}.json').write_text(compact_json(record) + '\n', encoding='utf-8')
    return output_dir / f'{stem}.png'


def write_temperature(folder: os.PathLike, temperature: float) -> Path:
    """Store `temperature` in a Hub folder's config.json (`model_args.temperature`, what `timm.create_model` passes
    back to the model as `model.temperature`), replacing the file atomically. Returns the config's path."""
    path = Path(folder) / 'config.json'
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist: {folder} is not a timm Hub folder')
    config = json.loads(path.read_text(encoding='utf-8'))
    config.setdefault('model_args', {})['temperature'] = float(temperature)
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(json.dumps(config, indent=2), encoding='utf-8')
    os.replace(tmp, path)
    return path


def measure_groups(outputs: Mapping[str, torch.Tensor], split: Dataset, num_classes: int,
                   columns: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Accuracy and mean class accuracy per group of each of `columns` (default: the split's group columns, e.g.
    RAF-DB's gender, race and age), from `predict` outputs in the split's order; {} when there are none."""
    columns = group_columns(split) if columns is None else list(columns)
    predictions, references = outputs['predictions'].tolist(), outputs['references'].tolist()
    if len(predictions) != len(split):
        raise ValueError(f'{len(predictions)} predictions for a split of {len(split)} images')
    out = {}
    for column in columns:
        if column not in split.column_names:
            raise ValueError(f'no column {column!r} to group by; the split has {", ".join(split.column_names)}')
        names = getattr(split.features[column], 'names', None)
        out[column] = group_metrics(predictions, references, split[column], num_classes, names=names)
    return out


def _card_metrics(results: dict[str, dict[str, Any]], dataset: str, split_names: dict[str, str],
                  calibration: Optional[Mapping[str, Any]] = None) -> list[Metric]:
    metrics = [
        Metric(name, 100 * values[name], dataset, split=split_names.get(role, role))
        for role, values in results.items() for name in CARD_METRICS if name in values
    ]
    metrics += [
        Metric(name, values[name], dataset, split=split_names.get(role, role))
        for role, values in results.items() for name in VA_CARD_METRICS if values.get(name) is not None
    ]
    for role, entry in (calibration or {}).get('splits', {}).items():
        if role != 'validation':  # ECE on the split the temperature was fitted on says little
            split = split_names.get(role, role)
            metrics += [Metric('ece', 100 * entry['after']['ece'], dataset, split=split),
                        Metric('ece_uncalibrated', 100 * entry['before']['ece'], dataset, split=split)]
    return metrics


def export_best(
        model: nn.Module,
        output_dir: os.PathLike,
        cfg: TrainConfig,
        results: dict[str, dict[str, Any]],
        split_names: dict[str, str],
        label_names: Sequence[str],
        data_config: dict[str, Any],
        epoch: int,
        calibration: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Write `output_dir/best`: config.json (label_names; the fitted temperature in `model_args` when
    `calibration` is given), model.safetensors and a card with the measured metrics.

    `results` maps a role ('validation', 'test') to its metrics (with `groups` where measured); the card names the
    split each came from.
    """
    recipe = {
        'data': f'{cfg.dataset}, trained on split `{split_names["train"]}`, selected on {split_names["validation"]}',
        'optimizer': f'{cfg.optimizer} lr {cfg.lr}, weight decay {cfg.weight_decay} (affinity centres included)',
        'schedule': f'{cfg.scheduler}, {cfg.epochs} epochs, global batch {cfg.batch_size}; best epoch {epoch}',
        'loss': f'CE + {cfg.lambda_affinity} x affinity + {cfg.lambda_partition} x partition'
                + (f' + {cfg.lambda_va} x valence/arousal CCC loss (sum of 1 - CCC)' if cfg.va_head else ''),
        'seed': str(cfg.seed),
    }
    if cfg.source:
        recipe['recipe source'] = cfg.source
    summary = calibration_summary(calibration) if calibration else None
    card = ModelCardInfo(
        model_name=f'{model.pretrained_cfg.get("architecture", cfg.model)} trained on {cfg.dataset}',
        datasets=[cfg.dataset], label_names=tuple(label_names),
        metrics=_card_metrics(results, cfg.dataset, split_names, calibration),
        architecture=model.pretrained_cfg.get('architecture', cfg.model), recipe=recipe,
        load_name=f'local-dir:{Path(output_dir) / "best"}',
        description=f'Trained with `train_scripts/train.py` (timm-dan); selected on {split_names["validation"]}.',
        calibration=summary or {},
        groups={f'{cfg.dataset} {split_names.get(role, role)}': values['groups'] for role, values in results.items()
                if values.get('groups')},
        valence_arousal=getattr(model, 'has_va', False),
    )
    model_config: dict[str, Any] = {'label_names': list(label_names), 'num_classes': len(label_names)}
    if calibration:
        model_config['model_args'] = {'temperature': calibration['temperature']}
    # a contiguous copy: safetensors stores contiguous tensors only, and the training model keeps its layout
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    return save_model_folder(model, Path(output_dir) / 'best', card=card, data_config=data_config,
                             model_config=model_config, overwrite=True)


def best_summary(results: dict[str, Optional[dict[str, Any]]]) -> dict[str, Any]:
    """The scalar metrics of each role (classes, uncalibrated ECE and NLL, valence/arousal), for the final JSON and
    the summary print."""
    keep = (*CARD_METRICS, 'ece', 'nll', *VA_CARD_METRICS, 'va_ccc', 'num_samples', 'num_va_samples')
    return {role: {k: values[k] for k in keep if k in values} for role, values in results.items() if values}
