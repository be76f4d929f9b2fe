"""timm-dan against a straightforward DAN, side by side in one run (issue 7).

    python benchmarks/run.py [--quick] [--json OUT]                  # this machine's CPU
    bash benchmarks/gpu.sh                                            # a GPU machine: bf16, compile, batch 256
    python benchmarks/run.py --only levers [--compile] [--predictor-compile]   # what each lever contributes

Every ratio is images/s of ours over images/s of the other contender (higher is better), from medians of
interleaved runs: each round runs every contender once, in alternating order, so machine drift cancels.
The equality checks (batched heads vs the per-head loop, reparameterized vs not) run before any timing and
stop the run when they fail. `--quick` runs fewer rounds and a shorter accuracy run, never a smaller input.

Each section is a module of `benchmarks/sections/` with `run(args, results)`, timing what
`benchmarks/contenders.py` builds with the helpers of `benchmarks/harness.py`; this file holds the CLI,
the order of the sections and the summary table.
"""
import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import timm_dan, benchmarks/ and tests/ from here

import torch  # noqa: E402

from benchmarks.harness import machine, print_table, run_sections  # noqa: E402
from benchmarks.sections import (  # noqa: E402
    accuracy,
    check,
    data,
    device,
    heads,
    infer,
    levers,
    loop,
    rss,
    train,
    trainpy,
)
from timm_dan.cpu import machine_class  # noqa: E402

SECTIONS = {'train': train.run, 'heads': heads.run, 'infer': infer.run, 'data': data.run, 'accuracy': accuracy.run,
            'rss': rss.run, 'loop': loop.run, 'device': device.run, 'trainpy': trainpy.run, 'levers': levers.run}
DEFAULT_SECTIONS = ('train', 'heads', 'infer', 'data', 'device', 'accuracy', 'rss')  # loop, trainpy, levers: asked for
# the targets of each machine class (timm_dan.cpu.machine_class): a CPU without bf16 is held to fp32-only figures
_BF16 = ('avx512_bf16', 'amx', 'cuda')
_FP32 = ('avx2', 'avx512', 'generic')
_CPU = ('avx512_bf16', 'amx') + _FP32
_ALL = _BF16 + _FP32
TABLE = (
    # key, what, {machine classes: target}
    ('train_over_reference', 'train step, train.py defaults / reference', {_BF16: '>= 2.5', _FP32: '>= 1.15'}),
    ('infer_over_reference', 'FERPredictor model call / reference eval, batch N', {_BF16: '>= 3.0'}),
    ('infer_over_reference_bs1', 'the same at batch 1', {('cuda',): '>= 2.0'}),
    ('int8_over_reference', 'FERPredictor int8 model call / reference eval, batch N', {_FP32: '>= 3.0'}),
    ('int8_over_reference_bs1', 'the same at batch 1', {_FP32: '>= 2.0'}),
    ('int8_over_default', 'FERPredictor int8 / its default precision, batch N', {_FP32: '>= 2.0'}),
    ('train_dan_over_backbone', 'our DAN train step / timm resnet18 + CE, same settings',
     {_BF16: '>= 0.85', _FP32: '>= 0.80'}),
    ('heads_over_loop', 'heads fwd+bwd, batched / per-head loop, fp32', {_BF16: '>= 1.5', _FP32: '>= 1.2'}),
    ('data_over_baseline', 'our loader / ImageFolder + PIL, same workers', {_ALL: '>= 2.0'}),
    ('data_cached_over_baseline', 'the same from the opt-in decoded cache (--cache-decoded)', {}),
    ('device_over_loader_per_core', 'device pipeline on CPU tensors / our loader, images per CPU-second',
     {_CPU: '>= 1.0'}),
    ('device_over_loader', 'the same, images/s (device: no workers)', {}),
    ('loop_device_over_in_memory', 'train step fed by the device pipeline / in-memory batch', {('cuda',): '>= 0.9'}),
    ('trainpy_over_in_memory', 'train.py end to end (data included) / in-memory step (loop)', {('cuda',): '>= 0.9'}),
    ('device_data_accuracy_delta', 'val. accuracy, device pipeline - DataLoader pipeline (points)', {_ALL: '~ 0'}),
    ('bf16_accuracy_delta', 'val. accuracy, default precision - fp32 (points)', {_BF16: '>= -0.5'}),
    ('peak_rss_ours_over_reference', 'peak RSS of a train step, ours / reference', {_ALL: '<= 1.0'}),
)


def targets_for(machine_class: str) -> list[tuple[str, str, str]]:
    """`TABLE` as (key, what, target) for one machine class ('' where the class has no target)."""
    return [(key, what, next((t for classes, t in targets.items() if machine_class in classes), ''))
            for key, what, targets in TABLE]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='fewer rounds and a shorter accuracy run')
    parser.add_argument('--json', type=Path, help='write the results here')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--rounds', type=int, help='interleaved rounds per contender (default 5, quick 3)')
    parser.add_argument('--compile', action='store_true', help="torch.compile our train step (train.py's --compile)")
    parser.add_argument('--predictor-compile', action='store_true',
                        help="torch.compile the predictor's model (Inductor freezing)")
    parser.add_argument('--predictor-precision', choices=('auto', 'fp32', 'bf16'),
                        help="FERPredictor's precision (default: its own default)")
    parser.add_argument('--data-workers', type=int, default=1)
    parser.add_argument('--data-images', type=int, default=None, help='images in the JPEG tree (default 512)')
    parser.add_argument('--loop-batches', type=int, default=8, help='batches per epoch of the loop section')
    parser.add_argument('--trainpy-images', type=int, default=12800, help="training images of train.py's run")
    parser.add_argument('--trainpy-epochs', type=int, default=5, help='epochs of it (the first compiles)')
    parser.add_argument('--accuracy-compare', choices=('precision', 'device-data'), default='precision',
                        help='what the accuracy section compares: default precision vs fp32, or the pipelines')
    parser.add_argument('--only', nargs='+', choices=SECTIONS,
                        help='run these sections (the equality check always runs)')
    parser.add_argument('--rss-child', choices=('reference', 'ours'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.data_rounds = 3
    args.data_images = args.data_images or (256 if args.quick else 512)
    args.predictor_kwargs = {'precision': args.predictor_precision} if args.predictor_precision else {}
    if args.predictor_compile:
        args.predictor_kwargs['compile'] = True
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.rss_child:
        rss.child(args.rss_child, args.batch_size)
        return 0
    sections = {'check': check.run, **{name: SECTIONS[name] for name in args.only or DEFAULT_SECTIONS}}
    results = {'date': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'machine': machine(),
               'machine_class': machine_class(torch.device(args.device)),
               'command': ' '.join([Path(sys.executable).name, *sys.argv]), 'torch': torch.__version__,
               'batch_size': args.batch_size, 'rounds': args.rounds}
    failed = run_sections(sections, args, results, args.json, required=('check',))
    print(f'machine class: {results["machine_class"]} (targets of that class)')
    print_table(results, targets_for(results['machine_class']))
    if failed:
        print(f'failed sections: {", ".join(failed)}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
