"""Where a step's time goes: torch.profiler tables of our train step or predictor call, and of the reference.

    python benchmarks/profile_step.py train [--precision bf16|fp32] [--nchw] [--reference]
    python benchmarks/profile_step.py infer [--precision bf16|fp32] [--nchw] [--reference]

Prints the ops by self CPU time (batch 32, 224x224, after two warm-up steps); the `heads` row is the heads'
forward (total CPU time column), next to the whole `step`.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timm  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

from benchmarks.contenders import NUM_CLASSES, plain_train_step, random_batch  # noqa: E402
from tests.reference_dan import ReferenceDAN  # noqa: E402


def labelled(fn, name: str):
    def call(*args, **kwargs):
        with record_function(name):
            return fn(*args, **kwargs)
    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('mode', choices=('train', 'infer'))
    parser.add_argument('--precision', choices=('bf16', 'fp32'), default='bf16')
    parser.add_argument('--nchw', action='store_true', help='contiguous NCHW instead of channels_last')
    parser.add_argument('--reference', action='store_true', help='profile the reference (fp32 NCHW always)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--rows', type=int, default=25)
    args = parser.parse_args()

    if args.reference:
        model, bf16, channels_last = ReferenceDAN(NUM_CLASSES), False, False
    else:
        model = timm.create_model('dan_resnet18', num_classes=NUM_CLASSES)
        bf16, channels_last = args.precision == 'bf16', not args.nchw
    heads = [m for n, m in model.named_modules() if n == 'heads' or n.startswith('cat_head')]
    for m in heads:  # the heads' forward shows as one `heads` row (their backward ops are not labelled)
        m.forward = labelled(m.forward, 'heads')
    images, labels = random_batch(args.batch_size)
    if args.mode == 'train':
        step = plain_train_step(model, images, labels, channels_last, bf16)
    else:
        model.eval()
        if hasattr(model, 'reparameterize'):
            model.reparameterize()
        if channels_last:
            model.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)

        @torch.inference_mode()
        def step():
            with torch.autocast('cpu', torch.bfloat16, enabled=bf16):
                model(images)
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function('step'):
            step()
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=args.rows))
    totals = {e.key: e.cpu_time_total / 1e3 for e in prof.key_averages() if e.key in ('step', 'heads')}
    print(f"heads' forward: {totals.get('heads', 0):.0f} ms of a {totals['step']:.0f} ms step")
    return 0


if __name__ == '__main__':
    sys.exit(main())
