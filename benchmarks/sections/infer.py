"""Inference: FERPredictor's model call (its default backend, or `--predictor-*`) vs the reference in eval mode,
at `--batch-size` and at batch 1; then the int8 predictor (onnxruntime, calibrated on real LFW face crops) vs the
reference and vs the default, on the CPU."""
import argparse
import time
from collections.abc import Callable

import torch
import torch.nn as nn

from benchmarks.contenders import reference_and_ours
from benchmarks.harness import device_sync, interleaved_medians, step_flops
from timm_dan.inference import FERPredictor


def infer_medians(reference: nn.Module, runner: Callable, batch_size: int, device: torch.device, rounds: int
                  ) -> dict[str, float]:
    """Both start from the same host batch and return host logits (on a GPU both pay the host-to-device copy)."""
    x = torch.randn(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    x_np = x.numpy()

    @torch.no_grad()
    def run_reference():
        return reference(x.to(device)).cpu()
    return interleaved_medians({'reference': run_reference, 'ours': lambda: runner(x_np, False)}, rounds,
                               device_sync(device))


def run(args: argparse.Namespace, results: dict) -> None:
    reference, ours = reference_and_ours()
    device = torch.device(args.device)
    reference = reference.to(device).eval()
    predictor = FERPredictor(ours, detector='none', device=device, **args.predictor_kwargs)
    runner = predictor.runner
    if args.predictor_compile:
        start = time.perf_counter()
        runner(torch.randn(args.batch_size, 3, 224, 224).numpy(), False)
        results['infer_compile_s'] = time.perf_counter() - start
    results['infer_settings'] = {'backend': type(runner).__name__, 'precision': getattr(runner, 'precision', None),
                                 'channels_last': getattr(runner, 'channels_last', None),
                                 'compile': args.predictor_compile}
    for batch_size, key in ((args.batch_size, 'infer_over_reference'), (1, 'infer_over_reference_bs1')):
        rounds = args.rounds * (2 if batch_size > 1 else 8)
        seconds = infer_medians(reference, runner, batch_size, device, rounds)
        results[f'infer_images_per_s_bs{batch_size}'] = {k: batch_size / v for k, v in seconds.items()}
        results[key] = seconds['reference'] / seconds['ours']
        if batch_size > 1:  # the reference's FLOPs (ours computes the same function, reparameterized: fewer)
            x = torch.randn(batch_size, 3, 224, 224, device=device)
            flops = step_flops(torch.no_grad()(lambda x=x: reference(x)))
            results['infer_gflop_per_s'] = {k: flops / v / 1e9 for k, v in seconds.items()}
    if device.type == 'cpu':
        int8_runner = FERPredictor(ours, detector='none', precision='int8', calibration=lfw_faces()).runner
        for batch_size, suffix in ((args.batch_size, ''), (1, '_bs1')):
            rounds = args.rounds * (2 if batch_size > 1 else 8)
            int8 = infer_medians(reference, int8_runner, batch_size, device, rounds)
            default = infer_medians(reference, runner, batch_size, device, rounds)
            results[f'int8_images_per_s_bs{batch_size}'] = {
                'reference': batch_size / int8['reference'], 'int8': batch_size / int8['ours'],
                'default': batch_size / default['ours']}
            results[f'int8_over_reference{suffix}'] = int8['reference'] / int8['ours']
            results[f'int8_over_default{suffix}'] = default['ours'] / int8['ours']


def lfw_faces(count: int = 128) -> list:
    """Real face crops to calibrate on: scikit-image's LFW subset (25 x 25 gray), as RGB uint8."""
    import numpy as np
    from skimage.data import lfw_subset
    faces = lfw_subset()[:100]
    return [(np.repeat(face[..., None], 3, 2) * 255 + .5).astype(np.uint8) for face in faces[:count]]
