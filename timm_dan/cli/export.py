"""`timm-dan export`: a model to ONNX, checked against PyTorch with onnxruntime."""
import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import Any

EXIT_OVER_TOLERANCE = 1
EXIT_BAD_INPUT = 2
MIN_OPSET = 16  # torch.onnx writes opset 18 and converts down with onnx's converter: 15 and below fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        'export', help='Export a model to ONNX, checked against PyTorch with onnxruntime',
        description='Export a DAN model to ONNX (outputs: logits, the heads\' attention maps unless '
                    '--no-attention, and valence_arousal for a model with a V/A head; the batch dimension is '
                    'dynamic unless --static-batch, as in timm\'s onnx_export), then compare onnxruntime with '
                    'PyTorch and print the max abs difference. Exit status 0 when it is within --tolerance, '
                    f'{EXIT_OVER_TOLERANCE} when it is over, '
                    f'{EXIT_BAD_INPUT} when nothing was exported (the model could not be loaded, the output not '
                    'written, onnx not installed, the exporter failed): one line naming the input.',
    )
    export.add_argument('model', metavar='MODEL', help='registered name/tag (pretrained), hf-hub: or local-dir:')
    export.add_argument('--format', default='onnx', choices=('onnx',))
    export.add_argument('--output', required=True, metavar='FILE')
    batch = export.add_mutually_exclusive_group()
    batch.add_argument('--static-batch', action='store_true', help='a fixed batch of 1 (default: any batch size)')
    batch.add_argument('--dynamic-batch', action='store_true', help=argparse.SUPPRESS)  # the default; old scripts
    export.add_argument('--opset', type=int, default=18)
    export.add_argument('--no-attention', action='store_true', help='export the logits only')
    export.add_argument('--tolerance', type=float, default=1e-3, help='largest accepted max abs difference')
    export.add_argument('--quantize', choices=('int8',), default=None,
                        help='write the model quantized to int8 (onnxruntime static QDQ of the convolutions, '
                             'calibrated on --calibration) for CPUs without bf16; the fp32 export is checked first')
    export.add_argument('--calibration', metavar='DIR', default=None,
                        help='with --quantize: face crops to calibrate on, a folder of images or a FER data set '
                             'name (synthetic, or NAME with --calibration-data-dir)')
    export.add_argument('--calibration-data-dir', metavar='DIR', default=None,
                        help='the data folder of the FER data set named by --calibration')
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.is_dir():
        return _bad_input(f'--output {output} is a folder: give the file to write, e.g. {output / "model.onnx"}')
    if (args.quantize is None) != (args.calibration is None):
        return _bad_input('--quantize int8 and --calibration DIR go together (static quantization measures the '
                          'activations on face crops)')
    missing = [name for name in ('onnx', 'onnxruntime', 'onnxscript') if importlib.util.find_spec(name) is None]
    if missing:
        return _bad_input(f'exporting needs onnx, onnxruntime and onnxscript ({", ".join(missing)} not installed): '
                          f'pip install "timm-dan[onnx]"')
    import onnx
    if not MIN_OPSET <= args.opset <= onnx.defs.onnx_opset_version():
        return _bad_input(f'--opset {args.opset}: this exporter writes opsets {MIN_OPSET} to '
                          f'{onnx.defs.onnx_opset_version()} (the installed onnx)')
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return _bad_input(f'cannot create the output folder {output.parent}: {e.strerror}')
    from ..inference.export import export_onnx
    from ..models.pretrained import load_pretrained
    try:
        model = load_pretrained(args.model)
    except Exception as e:
        return _bad_input(f'could not load model {args.model!r}: {_one_line(e)}')
    if not args.no_attention and not hasattr(getattr(model, 'heads', None), 'spatial_maps'):
        return _bad_input(f'{args.model!r} ({type(model).__name__}) has no DAN attention heads to export maps from: '
                          f'add --no-attention to export the logits only')
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
        fp32 = Path(tmp) / 'fp32.onnx' if args.quantize else output
        try:
            report = export_onnx(model, fp32, opset=args.opset, dynamic_batch=not args.static_batch,
                                 attention=not args.no_attention)
        except OSError as e:
            return _bad_input(f'could not write {fp32}: {_one_line(e)}')
        except Exception as e:  # the exporter's errors (an unsupported opset, an operator it cannot convert)
            return _bad_input(f'the ONNX export of {args.model!r} (opset {args.opset}) failed: {_one_line(e)}')
        code = _check(args, report)
        if code or not args.quantize:
            return code
        return _quantize(args, fp32, output)


def _check(args: argparse.Namespace, report: Any) -> int:
    written = 'fp32, to quantize' if args.quantize else report.path
    print(f'exported {args.model} -> {written} (input {"N" if report.dynamic_batch else 1}x'
          f'{"x".join(map(str, report.input_size))}, opset {args.opset})')
    print(f'onnxruntime vs PyTorch max abs diff: logits {report.max_abs_diff:.3g}' + (
        '' if report.max_abs_diff_attention is None else f', attention {report.max_abs_diff_attention:.3g}') + (
        '' if report.max_abs_diff_va is None else f', valence/arousal {report.max_abs_diff_va:.3g}'))
    worst = max(report.max_abs_diff, report.max_abs_diff_attention or 0., report.max_abs_diff_va or 0.)
    if worst > args.tolerance:
        print(f'timm-dan export: error: difference {worst:.3g} is over the tolerance {args.tolerance:g}',
              file=sys.stderr)
        return EXIT_OVER_TOLERANCE
    return 0


def _quantize(args: argparse.Namespace, fp32: Path, output: Path) -> int:
    """Quantize the checked fp32 file into `output`; print how often int8 and fp32 agree on the calibration
    faces."""
    import numpy as np

    from ..inference import FERPredictor
    from ..inference.quantize import calibration_faces, quantize_onnx
    try:
        faces = calibration_faces(args.calibration, args.calibration_data_dir)
        report = quantize_onnx(fp32, output, faces)
    except (ValueError, OSError) as e:
        return _bad_input(_one_line(e))
    probs = [np.array([list(r.faces[0].probs.values()) for r in FERPredictor(str(path), detector='none').predict(
        faces)]) for path in (fp32, output)]
    print(f'quantized to int8 -> {output} (calibrated on {report.calibration_faces} faces of {args.calibration}, '
          f'{report.seconds:.0f} s)')
    print(f'int8 vs fp32 on those faces: top-1 agreement {(probs[0].argmax(1) == probs[1].argmax(1)).mean():.1%}, '
          f'mean |dp| {np.abs(probs[0] - probs[1]).mean():.4f}')
    return 0


def _one_line(error: BaseException) -> str:
    """The first line of an error's message (exporter errors run to pages), or its type when it has none."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _bad_input(message: str) -> int:
    print(f'timm-dan export: error: {message}', file=sys.stderr)
    return EXIT_BAD_INPUT
