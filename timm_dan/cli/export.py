"""`timm-dan export`: a model to ONNX, checked against PyTorch with onnxruntime."""
import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        'export', help='Export a model to ONNX, checked against PyTorch with onnxruntime',
        description='Export a DAN model to ONNX (outputs: logits, the heads\' attention maps unless '
                    '--no-attention, and valence_arousal for a model with a V/A head), then compare onnxruntime '
                    'with PyTorch and print the max abs difference. Exit status 1 when the difference is over '
                    '--tolerance.',
    )
    export.add_argument('model', metavar='MODEL', help='registered name/tag (pretrained), hf-hub: or local-dir:')
    export.add_argument('--format', default='onnx', choices=('onnx',))
    export.add_argument('--output', required=True, metavar='FILE')
    export.add_argument('--dynamic-batch', action='store_true', help='variable batch size (default: fixed 1)')
    export.add_argument('--opset', type=int, default=18)
    export.add_argument('--no-attention', action='store_true', help='export the logits only')
    export.add_argument('--tolerance', type=float, default=1e-3, help='largest accepted max abs difference')
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..inference.export import export_onnx
    from ..models.pretrained import load_pretrained
    try:
        model = load_pretrained(args.model)
    except Exception as e:
        print(f'error: could not load model {args.model!r}: {e}', file=sys.stderr)
        return 2
    report = export_onnx(model, args.output, opset=args.opset, dynamic_batch=args.dynamic_batch,
                         attention=not args.no_attention)
    print(f'exported {args.model} -> {report.path} (input {"N" if report.dynamic_batch else 1}x'
          f'{"x".join(map(str, report.input_size))}, opset {args.opset})')
    print(f'onnxruntime vs PyTorch max abs diff: logits {report.max_abs_diff:.3g}' + (
        '' if report.max_abs_diff_attention is None else f', attention {report.max_abs_diff_attention:.3g}') + (
        '' if report.max_abs_diff_va is None else f', valence/arousal {report.max_abs_diff_va:.3g}'))
    worst = max(report.max_abs_diff, report.max_abs_diff_attention or 0., report.max_abs_diff_va or 0.)
    if worst > args.tolerance:
        print(f'error: difference {worst:.3g} is over the tolerance {args.tolerance:g}', file=sys.stderr)
        return 1
    return 0
