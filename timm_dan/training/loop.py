"""The epoch loop: `train_one_epoch` of a `TrainRun`, and `validate`, the evaluation that training and
`train_scripts/validate.py` share."""
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
from accelerate import Accelerator
from timm.utils import distribute_bn
from tqdm.auto import tqdm

from ..metrics import load_fer_metrics
from .engine import predict_loader

if TYPE_CHECKING:
    from .run import TrainRun

__all__ = ['train_one_epoch', 'validate']


def train_one_epoch(run: 'TrainRun', epoch: int) -> dict[str, float]:
    """Train `run` for one epoch, from batch `run.skip_batches` (after a mid-epoch resume) to the end or to
    `max_train_steps`.

    On the way it steps a per-step schedule and saves the `checkpoint_steps` checkpoints; at the end it steps a
    per-epoch schedule, checks the losses were finite and averages the BatchNorm statistics across processes.
    Returns the epoch's learning rate (at its start), its mean losses (`loss`, `ce`, `affinity`, `partition`)
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
    for batch, (images, labels) in enumerate(map(run.normalize, loader), start=skip):
        step(images, labels)
        images_seen += images.shape[0] * accelerator.num_processes
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


def validate(
        accelerator: Accelerator,
        model: nn.Module,
        loader: Iterable,
        normalize: Callable[[Any], tuple[torch.Tensor, torch.Tensor]],
        num_classes: int,
        channels_last: bool = True,
        tta: bool = False,
) -> dict[str, Any]:
    """The FER metrics of `model` over a prepared loader of uint8 batches, every image counted once over all
    processes: accuracy, mean_class_accuracy, macro_f1, per_class_recall, confusion_matrix and num_samples.

    `normalize` (a `DeviceNormalize`) turns each batch into the model's input; `num_classes` sizes the confusion
    matrix; `tta` averages the softmax of each image and its horizontal flip.
    """
    outputs = predict_loader(accelerator, model, map(normalize, loader), channels_last=channels_last, tta=tta)
    metric = load_fer_metrics()
    metric.add_batch(predictions=outputs['predictions'].tolist(), references=outputs['references'].tolist())
    return metric.compute(num_classes=num_classes)
