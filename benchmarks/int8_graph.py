"""Which ops the int8 graph quantizes, side by side: timm-dan's choice (`QUANTIZED_OPS`: conv, ReLU, max-pool)
against the convolutions alone, on a 224 px `dan_resnet18` at batch 32, both calibrated on the same LFW crops.

    PYTHONPATH=. python benchmarks/int8_graph.py [--rounds 7] [--image-size 224] [--batch-size 32]
    PYTHONPATH=. python benchmarks/int8_graph.py --agreement local-dir:RUN/best [local-dir:RUN2/best ...]

With the convolutions alone, every conv's output is quantized over its full range, turned back to float for its
ReLU (and max-pool) and quantized again for the next conv; quantizing the ReLUs lets onnxruntime fold each into its
conv's output range. Prints the machine, each graph's median call time (interleaved rounds) and the share of its
call that onnxruntime's profiler puts in each op type, then the ratio conv-only / shipped (> 1: shipped faster).

`--agreement` instead scores both graphs of each trained model against its fp32 predictor, as
`benchmarks/int8_agreement.py` does (calibrated on the demo's first 256 train faces; top-1 agreement and mean |dp|
on its 1000 validation faces and on the 200 `lfw_subset()` crops), then the mean over the models.
"""
import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import timm

import timm_dan  # noqa: F401
from benchmarks.harness import interleaved_medians, machine
from benchmarks.int8_agreement import agreement, demo_faces, probabilities, rgb
from benchmarks.sections.infer import lfw_faces
from timm_dan.cpu import machine_class, resolve_threads
from timm_dan.inference import FERPredictor, export_onnx, quantize_onnx
from timm_dan.inference.quantize import QUANTIZED_OPS

GRAPHS = {'shipped': QUANTIZED_OPS, 'conv only': ('Conv',)}


def op_shares(path: Path, batch: np.ndarray, prefix: Path) -> dict[str, float]:
    """Share of the kernel time per op type over three profiled calls."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.enable_profiling = resolve_threads(), True
    options.profile_file_prefix = str(prefix)
    session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: batch}
    for _ in range(3):
        session.run(None, feed)
    totals = collections.Counter()
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time'):
            totals[event['args']['op_name']] += event['dur']
    whole = sum(totals.values())
    return {op: t / whole for op, t in totals.most_common()}


def agreements(models: list[str], calibration: int = 256) -> None:
    """Top-1 agreement and mean |dp| of each graph against fp32, per model, then their means."""
    faces, _, train = demo_faces()
    calibration_faces = rgb(train.select(range(calibration))['image'])
    rows = {name: [] for name in GRAPHS}
    print(f'{"model":40s} {"graph":10s} {"validation top-1":>16s} {"mean |dp|":>9s} {"LFW top-1":>9s} '
          f'{"mean |dp|":>9s}')
    for name in models:
        model = timm.create_model(name, pretrained=True).eval()
        fp32 = FERPredictor(model, detector='none', precision='fp32')  # works on its own copy
        p32 = {split: probabilities(fp32, images) for split, images in faces.items()}
        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(model, Path(tmp) / 'fp32.onnx', dynamic_batch=True)
            for graph, ops in GRAPHS.items():
                quantize_onnx(Path(tmp) / 'fp32.onnx', Path(tmp) / 'int8.onnx', calibration_faces, op_types=ops)
                int8 = FERPredictor(str(Path(tmp) / 'int8.onnx'), detector='none', backend='onnxruntime')
                scores = {split: agreement(p32[split], probabilities(int8, images)) for split, images in faces.items()}
                rows[graph].append(scores)
                print(f'{name[-40:]:40s} {graph:10s} {scores["validation"]["top1_agreement"]:16.3f} '
                      f'{scores["validation"]["mean_abs_dp"]:9.4f} {scores["lfw_subset"]["top1_agreement"]:9.3f} '
                      f'{scores["lfw_subset"]["mean_abs_dp"]:9.4f}', flush=True)
    for graph, scores in rows.items():
        mean = {f'{split} {key}': np.mean([s[split][key] for s in scores]) for split in faces
                for key in ('top1_agreement', 'mean_abs_dp')}
        print(f'mean of {len(scores)} models, {graph}: ' + ', '.join(f'{k} {v:.4f}' for k, v in mean.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--agreement', nargs='+', metavar='MODEL', help='trained models to score both graphs on')
    args = parser.parse_args()
    if args.agreement:
        print(f'{machine()}, class {machine_class()}')
        agreements(args.agreement)
        return
    size = args.image_size
    model = timm.create_model('dan_resnet18', num_classes=7,
                              pretrained_cfg_overlay={'input_size': (3, size, size)}).eval()
    batch = np.random.default_rng(0).standard_normal((args.batch_size, 3, size, size), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export_onnx(model, tmp / 'fp32.onnx', dynamic_batch=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads = resolve_threads()
        sessions, shares = {}, {}
        for name, ops in GRAPHS.items():
            stem = tmp / name.replace(' ', '_')
            path = stem.with_suffix('.onnx')
            quantize_onnx(tmp / 'fp32.onnx', path, lfw_faces(64), op_types=ops)
            sessions[name] = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
            shares[name] = op_shares(path, batch, stem)
        feed = {sessions['shipped'].get_inputs()[0].name: batch}
        times = interleaved_medians({name: (lambda s=s: s.run(None, feed)) for name, s in sessions.items()},
                                    args.rounds, lambda: None)
    print(f'{machine()}, class {machine_class()}; {size} px, batch {args.batch_size}, {args.rounds} rounds')
    for name, ops in GRAPHS.items():
        top = ', '.join(f'{op} {share:.1%}' for op, share in list(shares[name].items())[:5])
        print(f'{name:10s} ({"+".join(ops)}): {times[name] * 1e3:6.0f} ms, {args.batch_size / times[name]:5.1f} '
              f'images/s; {top}')
    print(f'conv only / shipped: {times["conv only"] / times["shipped"]:.3f}')


if __name__ == '__main__':
    main()
