"""The heads alone: batched (ours) vs the per-head loop (the reference), forward + backward, fp32; ours as training
runs them on this machine (channels_last; on AVX2 CPUs convs split per head, small-map weight gradients as
matmuls), the loop as the paper's code does (NCHW)."""
import argparse

import torch

from benchmarks.contenders import reference_and_ours
from benchmarks.harness import device_sync, interleaved_medians, step_flops
from timm_dan.models.small_map_convs import resolve_small_map_convs, small_map_convs


def run(args: argparse.Namespace, results: dict) -> None:
    reference, ours = reference_and_ours()
    device = torch.device(args.device)
    heads_ours = ours.heads.to(device, memory_format=torch.channels_last).train()
    reference = reference.to(device).train()
    features = torch.randn(args.batch_size, 512, 7, 7, device=device, requires_grad=True)
    features_last = features.detach().contiguous(memory_format=torch.channels_last).requires_grad_()

    routed = resolve_small_map_convs(None, device)

    def run_ours():
        with small_map_convs(routed):
            out = heads_ours(features_last)
        out.sum().backward()

    def run_loop():
        reference.forward_heads(features).sum().backward()
    seconds = interleaved_medians({'loop': run_loop, 'ours': run_ours}, args.rounds * 2, device_sync(device))
    results['heads_images_per_s'] = {k: args.batch_size / v for k, v in seconds.items()}
    flops = step_flops(run_loop)  # the same convolutions and matmuls in both
    results['heads_gflop_per_s'] = {k: flops / v / 1e9 for k, v in seconds.items()}
    results['heads_over_loop'] = seconds['loop'] / seconds['ours']
