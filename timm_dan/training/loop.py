"""The epoch loop: `train_one_epoch` of a `TrainRun`, and `validate`, the evaluation that training and
`train_scripts/validate.py` share (`predict` + `compute_metrics`, for those that need the outputs too)."""
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
from accelerate import Accelerator
from timm.utils import distribute_bn
from tqdm.auto import tqdm

from ..metrics import calibration_metrics, fit_temperature, load_fer_metrics, load_va_metrics
from .engine import predict_loader

if TYPE_CHECKING:
    from .run import TrainRun

__all__ = ['train_one_epoch', 'validate', 'predict', 'compute_metrics']


def _with_targets(loader: Iterable, normalize: Callable[[Any], tuple[torch.Tensor, ...]]) -> Iterator[tuple]:
    """Batches -> (images, labels) or (images, labels, valence_arousal) when they carry V/A targets: uint8
    `FERBatch`es through `DeviceNormalize`, or the device pipeline's ready tuples through `keep_batch`."""
    for batch in loader:
        va = getattr(batch, 'valence_arousal', None)  # a FERBatch's; the device pipeline's tuples end with theirs
        targets = tuple(normalize(batch))
        yield targets if va is None else (*targets, va)


def train_one_epoch(run: 'TrainRun', epoch: int) -> dict[str, float]:
    """Train `run` for one epoch, from batch `run.skip_batches` (after a mid-epoch resume) to the end or to
    `max_train_steps`.

    On the way it steps a per-step schedule and saves the `checkpoint_steps` checkpoints; at the end it steps a
    per-epoch schedule, checks the losses were finite and averages the BatchNorm statistics across processes.
    Returns the epoch's learning rate (at its start), its mean losses (`loss`, `ce`, `affinity`, `partition`, `va`)
    and `images_per_s`.
    """
    cfg, accelerator, step = run.cfg, run.accelerator, run.step
    skip, run.skip_batches = run.skip_batches, 0
    loader = accelerator.skip_first_batches(run.train_loader, skip) if skip else run.train_loader
    loader.set_epoch(epoch)  # Accelerate's loader re-sets its sampler's epoch from this on every pass
    for seeded in run.epoch_seeded:  # ... and these, however deeply Accelerate wrapped them
        seeded.set_epoch(epoch)
    run.module.train()
    lr = run.optimizer.param_groups[0]['lr']
    per_step_schedule = cfg.scheduler == 'onecycle'
    progress = tqdm(total=len(run.train_loader), initial=skip, desc=f'epoch {epoch + 1}/{cfg.epochs}',
                    disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    start, images_seen = time.perf_counter(), 0
    for batch, targets in enumerate(_with_targets(loader, run.normalize), start=skip):
        step(*targets)  # images, labels (and valence/arousal targets with a V/A head)
        images_seen += targets[0].shape[0] * accelerator.num_processes
        progress.update(1)
        if (batch + 1) % cfg.log_every == 0:
            progress.set_postfix(loss=f'{step.peek_loss():.3f}',
                                 img_s=f'{images_seen / (time.perf_counter() - start):.1f}')
        at_boundary = accelerator.sync_gradients
        if at_boundary and per_step_schedule:
            run.scheduler.step()
        if at_boundary and cfg.checkpoint_steps and step.optimizer_steps % cfg.checkpoint_steps == 0 \
                and batch + 1 < len(run.train_loader):
            run.checkpoint(epoch, batch + 1)
        if run.reached_max_steps:
            break
    progress.close()
    train_time = time.perf_counter() - start
    if not per_step_schedule:
        run.scheduler.step()
    step.check_finite()
    losses = step.read_losses()
    if accelerator.num_processes > 1:  # BatchNorm statistics are per process: average them before evaluating
        for bn_model in (accelerator.unwrap_model(run.module), run.ema):
            if bn_model is not None:
                distribute_bn(bn_model, accelerator.num_processes, reduce=True)
    return {'lr': lr, **losses, 'images_per_s': images_seen / max(train_time, 1e-9)}


def predict(
        accelerator: Accelerator,
        model: nn.Module,
        loader: Iterable,
        normalize: Callable[[Any], tuple[torch.Tensor, torch.Tensor]],
        channels_last: bool = True,
        tta: bool = False,
) -> dict[str, torch.Tensor]:
    """`predict_loader` over a prepared loader of uint8 `FERBatch`es (their valence/arousal targets included), every
    image once over all processes and in the data set's order."""
    return predict_loader(accelerator, model, _with_targets(loader, normalize), channels_last=channels_last, tta=tta)


def compute_metrics(outputs: dict[str, torch.Tensor], num_classes: int, calibrate: bool = False) -> dict[str, Any]:
    """The metrics of `predict`'s outputs: the FER metrics (accuracy, mean_class_accuracy, macro_f1,
    per_class_recall, confusion_matrix, num_samples), `ece` (15 bins) and `nll` of the raw softmax, and with
    valence/arousal predictions and targets CCC, PCC, RMSE, SAGR per dimension, `va_ccc`, `num_va_samples`.

    `calibrate` also fits a temperature on these outputs (training's model-selection split: never a test split)
    and adds `temperature`, `ece_calibrated` and `nll_calibrated` (in-sample figures, as the fit used them).
    """
    metric = load_fer_metrics()
    metric.add_batch(predictions=outputs['predictions'].tolist(), references=outputs['references'].tolist())
    results = metric.compute(num_classes=num_classes)
    logits, labels = outputs['logits'].numpy(), outputs['references'].numpy()
    raw = calibration_metrics(logits, labels)
    results.update(ece=raw['ece'], nll=raw['nll'])
    if calibrate:
        temperature = fit_temperature(logits, labels)
        scaled = calibration_metrics(logits, labels, temperature)
        results.update(temperature=temperature, ece_calibrated=scaled['ece'], nll_calibrated=scaled['nll'])
    if 'va_references' in outputs:
        va = load_va_metrics()
        va.add_batch(predictions=outputs['valence_arousal'].tolist(), references=outputs['va_references'].tolist())
        results.update(va.compute())
    return results


def validate(
        accelerator: Accelerator,
        model: nn.Module,
        loader: Iterable,
        normalize: Callable[[Any], tuple[torch.Tensor, torch.Tensor]],
        num_classes: int,
        channels_last: bool = True,
        tta: bool = False,
        calibrate: bool = False,
) -> dict[str, Any]:
    """The metrics of `model` over a prepared loader of uint8 batches, every image counted once over all
    processes: accuracy, mean_class_accuracy, macro_f1, per_class_recall, confusion_matrix, num_samples, `ece` and
    `nll` (uncalibrated), and the valence/arousal metrics when the model and the batches have them.

    `normalize` (a `DeviceNormalize`) turns each batch into the model's input; `num_classes` sizes the confusion
    matrix; `tta` averages the softmax of each image and its horizontal flip; `calibrate` (training's validation
    split only) adds the temperature fitted on it and the ECE and NLL after it (`compute_metrics`).
    """
    outputs = predict(accelerator, model, loader, normalize, channels_last=channels_last, tta=tta)
    return compute_metrics(outputs, num_classes, calibrate=calibrate)
