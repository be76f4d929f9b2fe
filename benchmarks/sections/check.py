"""The equality check that runs before any timing: batched heads vs the per-head loop (train and eval mode,
forward and gradients), reparameterized vs not. A failure stops the run."""
import argparse

import torch

import timm_dan
from benchmarks.contenders import NUM_CLASSES, reference_and_ours


def max_relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def check_equal_outputs(tolerance: float = 1e-4) -> dict[str, float]:
    """The max relative error of each compared tensor; raises SystemExit when one exceeds `tolerance`."""
    reference, ours = reference_and_ours(seed=1)
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 3, 5, 6])
    loss_fn = timm_dan.DANLoss(NUM_CLASSES)
    errors = {}

    out_ref, out_ours = reference.train().forward_train(x), ours.train().forward_train(x)
    for name in ('logits', 'features', 'heads'):
        errors[f'train_{name}'] = max_relative_error(getattr(out_ours, name), getattr(out_ref, name))
    loss_fn(out_ref, target).backward()
    loss_fn(out_ours, target).backward()
    ref_grad = torch.cat([getattr(reference, f'cat_head{i}').sa.conv_3x3[0].weight.grad for i in range(4)])
    errors['grad_heads_conv3x3'] = max_relative_error(ours.heads.conv_3x3.conv.weight.grad, ref_grad)
    errors['grad_trunk_conv1'] = max_relative_error(ours.backbone.conv1.weight.grad, reference.features[0].weight.grad)

    with torch.no_grad():
        logits_ref = reference.eval()(x)
        errors['eval_logits'] = max_relative_error(ours.eval()(x), logits_ref)
        errors['reparameterized_logits'] = max_relative_error(ours.reparameterize()(x), logits_ref)
    failed = {k: v for k, v in errors.items() if not v <= tolerance}
    if failed:
        raise SystemExit(f'Equality check failed (max relative error > {tolerance}): {failed}')
    return errors


def run(args: argparse.Namespace, results: dict) -> None:
    results['equality_max_relative_error'] = check_equal_outputs()
