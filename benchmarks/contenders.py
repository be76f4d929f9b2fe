"""What the sections time: the reference DAN and ours holding the same weights, and training steps set up as
train.py sets them up (ours) or as plainly as the paper's code would (the reference), or with plain
`torch.autocast` and no Accelerate (each lever alone)."""
from collections.abc import Callable
from typing import Optional

import timm
import torch
import torch.nn as nn
from accelerate import Accelerator

import timm_dan
from tests.reference_dan import ReferenceDAN
from timm_dan.precision import accelerate_mixed_precision
from timm_dan.training import DANTrainModule, TrainStep, resolve_channels_last
from timm_dan.training.config import TrainConfig
from timm_dan.training.factory import create_loss, create_optimizer, create_train_model

NUM_CLASSES = 7


def random_batch(batch_size: int, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """224x224 images and labels drawn from `generator` (default: a fresh one seeded 0)."""
    generator = generator or torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, 224, 224, generator=generator)
    return images, torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator)


def reference_and_ours(seed: int = 0) -> tuple[ReferenceDAN, nn.Module]:
    """A reference DAN with non-trivial BatchNorm statistics, and our `dan_resnet18` holding the same weights."""
    torch.manual_seed(seed)
    reference = ReferenceDAN(NUM_CLASSES).train()
    with torch.no_grad():
        for _ in range(3):  # fill the running statistics, as after some training
            reference(torch.randn(8, 3, 96, 96))
    ours = timm.create_model('dan_resnet18', num_classes=NUM_CLASSES)
    ours.load_state_dict(timm_dan.convert_official_checkpoint(reference.state_dict(), f'affectnet{NUM_CLASSES}'))
    return reference, ours


def default_train_config(**overrides) -> TrainConfig:
    """train.py's defaults (RAF-DB recipe: SGD 0.1, momentum 0.9, wd 1e-4; precision/channels_last 'auto')."""
    return TrainConfig(num_classes=NUM_CLASSES, **overrides)


def train_accelerator(cfg: TrainConfig, device: str) -> Accelerator:
    """The Accelerator exactly as train.py builds it (precision resolved at run time, optional inductor)."""
    return Accelerator(mixed_precision=accelerate_mixed_precision(cfg.precision), cpu=device == 'cpu',
                       dynamo_backend='inductor' if cfg.compile else None)


def our_dan_module(cfg: TrainConfig) -> DANTrainModule:
    """Our DAN and its DANLoss, built by train.py's factories."""
    model = create_train_model(cfg)
    return DANTrainModule(model, create_loss(cfg, model))


def prepare_train_step(accelerator: Accelerator, cfg: TrainConfig, module: nn.Module) -> TrainStep:
    """A `TrainStep` set up as train.py sets it up; `module` is a DANTrainModule (or the backbone's)."""
    channels_last = resolve_channels_last(cfg.channels_last)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    loss = module.loss_fn if isinstance(module, DANTrainModule) else nn.Module()
    optimizer = create_optimizer(cfg, module.model, loss)
    module, optimizer = accelerator.prepare(module, optimizer)
    return TrainStep(accelerator, module, optimizer, clip_grad=cfg.clip_grad, channels_last=channels_last)


def our_train_step(accelerator: Accelerator, cfg: TrainConfig, module: nn.Module, images: torch.Tensor,
                   labels: torch.Tensor) -> Callable[[], object]:
    """One call: one training step of `module` on the batch, moved to the accelerator's device once."""
    step = prepare_train_step(accelerator, cfg, module)
    images, labels = images.to(accelerator.device), labels.to(accelerator.device)
    return lambda: step(images, labels)


def reference_train_step(images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig) -> Callable[[], object]:
    """The reference: fp32, NCHW, eager, the same DANLoss and optimizer settings."""
    device = images.device
    model = ReferenceDAN(NUM_CLASSES).to(device).train()
    loss_fn = timm_dan.DANLoss(NUM_CLASSES).to(device)
    optimizer = create_optimizer(cfg, model, loss_fn)

    def step():
        loss = loss_fn(model.forward_train(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()
    return step


def plain_train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, channels_last: bool,
                     bf16: bool, compile_model: bool = False) -> Callable[[], object]:
    """One training step of `model` (ours or the reference) with DANLoss and train.py's SGD settings."""
    loss_fn = timm_dan.DANLoss(NUM_CLASSES)
    optimizer = create_optimizer(default_train_config(), model, loss_fn)
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model.forward_train) if compile_model else model.forward_train

    def step():
        with torch.autocast(images.device.type, torch.bfloat16, enabled=bf16):
            loss = loss_fn(forward(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step
