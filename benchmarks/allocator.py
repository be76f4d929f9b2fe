"""glibc's default malloc against `timm_dan.cpu.keep_freed_memory` in the demo's training step (64 px, batch 64,
fp32, channels_last, AdamW as configs/synthetic.yaml sets it up), each in its own process, the processes
alternated (`--rounds`) so that drift cancels.

    python benchmarks/allocator.py [--rounds 3] [--steps 20]

Prints the machine, then per setting the median step time over all rounds, the page faults and the system time
per step, and the ratio of the step times (default / kept: > 1 means keeping the freed memory is faster).
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import DEMO_CONFIG  # noqa: E402

SETTINGS = ('glibc default', 'freed memory kept')


def child(keep: bool, steps: int) -> dict:
    import torch  # noqa: PLC0415

    from benchmarks.contenders import our_dan_module, our_train_step, train_accelerator  # noqa: PLC0415
    from timm_dan.cpu import keep_freed_memory, set_threads  # noqa: PLC0415
    from timm_dan.training.config import load_config  # noqa: PLC0415

    set_threads()
    applied = keep_freed_memory() if keep else False
    cfg = load_config(str(DEMO_CONFIG))
    torch.manual_seed(0)
    accelerator = train_accelerator(cfg, 'cpu')
    images = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    labels = torch.randint(0, cfg.num_classes, (cfg.batch_size,))
    step = our_train_step(accelerator, cfg, our_dan_module(cfg), images, labels)
    for _ in range(3):
        step()
    before, times = resource.getrusage(resource.RUSAGE_SELF), []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {'applied': applied, 'times': times, 'faults': (after.ru_minflt - before.ru_minflt) / steps,
            'system_s': (after.ru_stime - before.ru_stime) / steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--child', choices=('on', 'off'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child == 'on', args.steps)))
        return 0

    from benchmarks.harness import machine  # noqa: PLC0415

    runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for r in range(args.rounds):
        order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
        for name in order:
            done = subprocess.run([sys.executable, __file__, '--child', 'on' if name == SETTINGS[1] else 'off',
                                   '--steps', str(args.steps)], capture_output=True, text=True, check=True)
            runs[name].append(json.loads(done.stdout.splitlines()[-1]))
    print(f'{machine()}; {args.rounds} rounds x {args.steps} steps')
    if not runs[SETTINGS[1]][0]['applied']:
        print('keep_freed_memory does not apply here (not glibc, or MALLOC_* already set): both rows are the default')
    print(f'{"setting":20s} {"step ms":>8s} {"faults/step":>12s} {"system ms/step":>15s}')
    medians = {}
    for name, results in runs.items():
        medians[name] = statistics.median(t for result in results for t in result['times'])
        faults = statistics.mean(result['faults'] for result in results)
        system = statistics.mean(result['system_s'] for result in results)
        print(f'{name:20s} {medians[name] * 1e3:8.0f} {faults:12.0f} {system * 1e3:15.1f}')
    print(f'default / kept: {medians[SETTINGS[0]] / medians[SETTINGS[1]]:.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
