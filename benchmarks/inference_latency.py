"""Per-image inference latency of DAN: eager PyTorch vs onnxruntime, side by side in one run.

Random weights (latency does not depend on them), no downloads. The runners take turns (interleaved rounds,
medians: `benchmarks/harness.py`). Example:
    OMP_NUM_THREADS=2 python benchmarks/inference_latency.py --model dan_resnet18 --batch-sizes 1 32
"""
import argparse
import copy
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402

import timm_dan  # noqa: F401, E402  (registers the dan_* models)
from benchmarks.harness import interleaved_medians  # noqa: E402
from timm_dan.inference import export_onnx  # noqa: E402


def torch_fn(model: torch.nn.Module, channels_last: bool = False, bf16: bool = False):
    def run(x: np.ndarray):
        t = torch.from_numpy(x)
        if channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            return model(t)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='dan_resnet18')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--repeats', type=int, default=5, help='interleaved rounds (x4 at batch 1)')
    parser.add_argument('--threads', type=int, default=None, help='torch and onnxruntime intra-op threads')
    parser.add_argument('--bf16', action='store_true', help='also time bf16 autocast (eager)')
    args = parser.parse_args()

    import onnxruntime as ort
    if args.threads:
        torch.set_num_threads(args.threads)
    model = timm.create_model(args.model, num_classes=8).eval()
    model.pretrained_cfg = dict(model.pretrained_cfg, input_size=(3, args.img_size, args.img_size))
    fused = timm.utils.reparameterize_model(copy.deepcopy(model))
    fused_cl = copy.deepcopy(fused).to(memory_format=torch.channels_last)
    with tempfile.TemporaryDirectory() as tmp:
        report = export_onnx(model, Path(tmp) / 'model.onnx', dynamic_batch=True, attention=False)
        options = ort.SessionOptions()
        if args.threads:
            options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(report.path), options, providers=['CPUExecutionProvider'])

        runners = {
            'torch eager fp32': torch_fn(model),
            'torch eager fp32, folded + channels_last': torch_fn(fused_cl, channels_last=True),
        }
        if args.bf16:
            runners['torch eager bf16, folded + channels_last'] = torch_fn(fused_cl, channels_last=True, bf16=True)
        runners['onnxruntime fp32 (folded)'] = lambda x: session.run(['logits'], {'input': x})

        print(f'{args.model}, {args.img_size}x{args.img_size}, torch {torch.__version__} '
              f'({torch.get_num_threads()} threads), onnxruntime {ort.__version__}; '
              f'ONNX parity max abs diff {report.max_abs_diff:.2e}')
        print(f'{"runner":<44}' + ''.join(f'{"batch " + str(b):>14}' for b in args.batch_sizes) + '   (ms/image)')
        rng = np.random.default_rng(0)
        ms = {name: [] for name in runners}
        for b in args.batch_sizes:  # per image: the median call over the rounds, divided by the batch size
            batch = rng.standard_normal((b, 3, args.img_size, args.img_size), dtype=np.float32)
            seconds = interleaved_medians({name: (lambda fn=fn, x=batch: fn(x)) for name, fn in runners.items()},
                                          args.repeats if b > 1 else args.repeats * 4, lambda: None)
            for name, s in seconds.items():
                ms[name].append(s / b * 1000.)
        for name, cells in ms.items():
            print(f'{name:<44}' + ''.join(f'{c:14.2f}' for c in cells))


if __name__ == '__main__':
    main()
