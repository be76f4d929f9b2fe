"""Conv forward + backward with oneDNN's weight gradient vs one matmul (`timm_dan.models.small_map_convs`), per
conv shape of `dan_resnet18` at 64 and 224 px, and for the whole training step; fp32, channels_last, side by side.

    python benchmarks/small_map_convs.py [--rounds 6] [--threads N]

Prints the machine, each shape's milliseconds and the ratio (oneDNN / matmul: > 1 means the matmul is faster);
`timm_dan` routes a conv only when its output map has at most MAX_OUTPUT_POSITIONS positions, and only on the
machine classes where it pays (`resolve_small_map_convs`).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.contenders import NUM_CLASSES, plain_train_step  # noqa: E402
from benchmarks.harness import interleaved_medians, machine  # noqa: E402
from timm_dan.models.small_map_convs import MAX_OUTPUT_POSITIONS, small_map_convs  # noqa: E402

# (batch, in, out, input side, kernel, stride): dan_resnet18's convs at 64 px (2 x 2 and 4 x 4 maps), then 224 px
SHAPES = [
    (64, 512, 512, 2, (3, 3), 1), (64, 256, 512, 4, (3, 3), 2), (64, 256, 512, 2, (3, 3), 1),
    (64, 256, 512, 2, (1, 3), 1), (64, 256, 512, 2, (3, 1), 1), (64, 256, 256, 4, (3, 3), 1),
    (64, 128, 128, 8, (3, 3), 1), (64, 64, 64, 16, (3, 3), 1),
    (32, 512, 512, 7, (3, 3), 1), (32, 256, 512, 7, (3, 3), 1), (32, 256, 512, 7, (1, 3), 1),
]


def conv_step(shape) -> dict:
    batch, in_chs, out_chs, side, kernel, stride = shape
    x = torch.randn(batch, in_chs, side, side).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(out_chs, in_chs, *kernel).contiguous(memory_format=torch.channels_last).requires_grad_()
    padding = (kernel[0] // 2, kernel[1] // 2)

    def run(enabled: bool):
        def step():
            x.grad = w.grad = None
            with small_map_convs(enabled):
                y = F.conv2d(x, w, None, stride, padding)
            y.backward(torch.ones_like(y))
        return step
    return {'oneDNN': run(False), 'matmul': run(True)}


def with_convs(step, enabled: bool):
    def run():
        with small_map_convs(enabled):
            step()
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=6)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'{machine()}; routed when the output has <= {MAX_OUTPUT_POSITIONS} positions (others: both columns oneDNN)')
    print(f'{"conv (batch, in -> out, input, kernel, stride)":<50} {"oneDNN ms":>10} {"matmul ms":>10} {"ratio":>6}')
    for shape in SHAPES:
        batch, in_chs, out_chs, side, kernel, stride = shape
        s = interleaved_medians(conv_step(shape), args.rounds, lambda: None)
        out_side = (side + 2 * (kernel[0] // 2) - kernel[0]) // stride + 1
        routed = '' if out_side * out_side <= MAX_OUTPUT_POSITIONS else ' (not routed)'
        name = f'{batch}, {in_chs} -> {out_chs}, {side}x{side}, {kernel[0]}x{kernel[1]}, /{stride}{routed}'
        print(f'{name:<50} {s["oneDNN"] * 1e3:>10.1f} {s["matmul"] * 1e3:>10.1f} {s["oneDNN"] / s["matmul"]:>6.2f}')
    for size, batch in ((64, 64), (224, 32)):
        torch.manual_seed(0)
        model = timm.create_model('dan_resnet18', num_classes=NUM_CLASSES)
        images, labels = torch.randn(batch, 3, size, size), torch.randint(0, NUM_CLASSES, (batch,))
        step = plain_train_step(model, images, labels, channels_last=True, bf16=False)
        s = interleaved_medians({'oneDNN': with_convs(step, False), 'matmul': with_convs(step, True)}, args.rounds,
                                lambda: None)
        name = f'dan_resnet18 train step, {size} px, batch {batch}'
        print(f'{name:<50} {s["oneDNN"] * 1e3:>10.0f} {s["matmul"] * 1e3:>10.0f} {s["oneDNN"] / s["matmul"]:>6.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
