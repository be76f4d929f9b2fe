"""Inference: FERPredictor's model call (its default backend, or `--predictor-*`) vs the reference in eval mode,
at `--batch-size` and at batch 1, both from the host and back (the host-to-device copy counted): ours fed what the
predictor feeds its runner (uint8 crops, normalised on the device; CUDA graphs there), the reference the float
batch a plain transform makes. Then, on the CPU, the int8 predictor (onnxruntime, calibrated on real LFW face
crops) vs the reference and vs the default."""
import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from benchmarks.contenders import reference_and_ours
from benchmarks.harness import device_sync, interleaved_medians, step_flops
from timm_dan.inference import FERPredictor


def host_batches(batch_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """The same random images as a normalised float N x 3 x 224 x 224 batch (the reference's input) and as uint8
    N x 224 x 224 x 3 pixels (what FERPredictor hands its torch runner)."""
    pixels = torch.randint(0, 256, (batch_size, 224, 224, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor(IMAGENET_DEFAULT_MEAN)[:, None, None], torch.tensor(IMAGENET_DEFAULT_STD)[:, None, None]
    return (pixels.permute(0, 3, 1, 2).float() / 255 - mean) / std, pixels.numpy()


def infer_medians(reference: nn.Module, runner: Callable, batch_size: int, device: torch.device, rounds: int
                  ) -> dict[str, float]:
    """Both start from the same host images and return host logits (on a GPU both pay the host-to-device copy)."""
    x, pixels = host_batches(batch_size)
    ours = pixels if getattr(runner, 'takes_uint8', False) else x.numpy()

    @torch.no_grad()
    def run_reference():
        return reference(x.to(device)).cpu()
    return interleaved_medians({'reference': run_reference, 'ours': lambda: runner(ours, False)}, rounds,
                               device_sync(device))


def run(args: argparse.Namespace, results: dict) -> None:
    reference, ours = reference_and_ours()
    device = torch.device(args.device)
    reference = reference.to(device).eval()
    predictor = FERPredictor(ours, detector='none', device=device, **args.predictor_kwargs)
    runner = predictor.runner
    if args.predictor_compile or getattr(runner, 'cuda_graphs', False):  # compilation, CUDA graph capture
        for batch_size in (args.batch_size, 1):
            start = time.perf_counter()
            runner(host_batches(batch_size)[1], False)
            results[f'infer_first_call_s_bs{batch_size}'] = time.perf_counter() - start
    results['infer_settings'] = {'backend': type(runner).__name__, 'precision': getattr(runner, 'precision', None),
                                 'channels_last': getattr(runner, 'channels_last', None),
                                 'compile': args.predictor_compile, 'cuda_graphs': getattr(runner, 'cuda_graphs', None),
                                 'input': 'uint8 N x H x W x 3' if getattr(runner, 'takes_uint8', False) else 'float'}
    if getattr(runner, 'cuda_graphs', False):  # the graphs compute what the eager model computes
        x, pixels = host_batches(8)
        with torch.inference_mode():
            eager = runner.model(runner._model_input(torch.from_numpy(pixels).to(device))).float().cpu().numpy()
        results['infer_graphs_max_abs_diff'] = float(np.abs(runner(pixels, False)[0] - eager).max())
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
