"""Training steps: ours (train.py's defaults, through `TrainStep` and Accelerate) vs the reference (fp32 NCHW
eager) vs a plain timm resnet18 with cross-entropy under the same settings, and the GFLOP/s each achieves."""
import argparse
import time

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks.contenders import (
    NUM_CLASSES,
    default_train_config,
    our_dan_module,
    our_train_step,
    random_batch,
    reference_train_step,
    train_accelerator,
)
from benchmarks.harness import device_sync, interleaved_medians, matmul_peak, step_flops
from timm_dan import DANLossParts
from timm_dan.training import resolve_channels_last


class BackboneTrainModule(nn.Module):
    """Plain timm resnet18 + cross-entropy, returning `DANLossParts` so that the same `TrainStep` drives it."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.model = timm.create_model('resnet18', num_classes=num_classes)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> DANLossParts:
        ce = F.cross_entropy(self.model(images).float(), labels)
        zero = ce.new_zeros(())
        return DANLossParts(ce, ce, zero, zero)


def run(args: argparse.Namespace, results: dict) -> None:
    cfg = default_train_config(compile=args.compile)
    accelerator = train_accelerator(cfg, args.device)
    device = accelerator.device
    images, labels = random_batch(args.batch_size)
    contenders = {
        'reference': reference_train_step(images.to(device), labels.to(device), cfg),
        'ours': our_train_step(accelerator, cfg, our_dan_module(cfg), images, labels),
        'resnet18': our_train_step(accelerator, cfg, BackboneTrainModule(NUM_CLASSES), images, labels),
    }
    start = time.perf_counter()
    contenders['ours']()  # first call: oneDNN primitives, and the compilation when --compile
    results['train_first_step_s'] = time.perf_counter() - start
    seconds = interleaved_medians(contenders, args.rounds, device_sync(device))
    ips = {k: args.batch_size / v for k, v in seconds.items()}
    results['train_images_per_s'] = ips
    results['train_settings'] = {'precision': accelerator.mixed_precision,
                                 'channels_last': resolve_channels_last(cfg.channels_last), 'compile': cfg.compile}
    results['train_over_reference'] = ips['ours'] / ips['reference']
    results['train_dan_over_backbone'] = ips['ours'] / ips['resnet18']
    # achieved GFLOP/s against the matmul peak: how far each step is from what its precision allows
    # (ours computes the reference's FLOPs; counted on the eager reference, which --compile leaves alone)
    flops = {'reference': step_flops(contenders['reference'])}
    flops['ours'] = flops['reference']
    if not cfg.compile:
        flops['resnet18'] = step_flops(contenders['resnet18'])
    results['train_gflop_per_s'] = {k: flops[k] / seconds[k] / 1e9 for k in flops}
    results['matmul_peak_gflop_per_s'] = matmul_peak(device)
