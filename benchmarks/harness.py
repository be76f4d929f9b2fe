"""The benchmarks' harness: interleaved timing, FLOP counts, the machine, the table, and running sections.

Every timing is a median over interleaved rounds: each round runs every contender once, in alternating order,
so machine drift cancels out of the ratios. A section that fails is recorded and costs none of the others.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / 'train_scripts' / 'configs' / 'synthetic.yaml'  # the README's main job

Section = Callable[[argparse.Namespace, dict], None]


def interleaved_medians(contenders: dict[str, Callable[[], object]], rounds: int, sync: Callable[[], None]
                        ) -> dict[str, float]:
    """Median seconds per call of each contender: one warm-up call each, then `rounds` interleaved rounds."""
    for fn in contenders.values():
        fn()
        sync()
    times = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            contenders[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def device_sync(device: torch.device) -> Callable[[], None]:
    """What waits for `device` to finish its queued work (nothing to wait for on a CPU)."""
    return torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process and its live children (DataLoader workers) have used so far."""
    import psutil
    process = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)])


def step_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of `fn` (forward and backward matmuls and convolutions), counted by torch's
    `FlopCounterMode` on an eager call."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, rounds: int = 5) -> dict[str, float]:
    """GFLOP/s of a large square matmul in fp32 and bf16: what the convolutions could reach at best."""
    n = 8192 if device.type == 'cuda' else 2048
    peak = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(n, n, device=device).to(dtype)
        seconds = interleaved_medians({'mm': lambda a=a: a @ a}, rounds, device_sync(device))['mm']
        peak[str(dtype).removeprefix('torch.')] = 2 * n ** 3 / seconds / 1e9
    return peak


def machine() -> str:
    """The GPU, or the CPU model, with the number of cores (and torch threads on a CPU)."""
    if torch.cuda.is_available():
        return f'{torch.cuda.get_device_name()} ({os.cpu_count()} CPU cores)'
    cpu = platform.processor() or 'cpu'
    try:
        cpu = next(line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads'


def print_table(results: dict, table: Sequence[tuple[str, str, str]]) -> None:
    """One row per `(key, what, target)` of `table` ('-' where not measured), then the figures behind them."""
    print(f'\n{"key":30s} {"value":>8s}  {"target":8s}  what')
    for key, what, target in table:
        value = results.get(key)
        shown = '-' if value is None else f'{value:8.2f}'
        print(f'{key:30s} {shown:>8s}  {target:8s}  {what}')
    for key, value in results.items():  # the images/s (and other figures) behind the ratios
        if isinstance(value, dict) and all(isinstance(v, float) for v in value.values()):
            print(f'  {key}: ' + ', '.join(f'{k} {v:.4g}' for k, v in value.items()))


def run_sections(sections: dict[str, Section], args: argparse.Namespace, results: dict,
                 json_path: Optional[Path] = None, required: Sequence[str] = ()) -> list[str]:
    """Run each section into `results`, in order, and return the names of those that failed.

    A section that raises is recorded as `<name>_error` and the run goes on (one-shot runs on a lent GPU keep
    what the others measure), except a `required` one (the equality check), whose error stops the run. What each
    section added goes to stderr, and `results` to `json_path` after every section, so that a run stopped
    half-way keeps what it measured.
    """
    failed = []
    for name, section in sections.items():
        start = time.perf_counter()
        before = set(results)
        try:
            section(args, results)
        except Exception as e:
            if name in required:
                raise
            traceback.print_exc()
            failed.append(name)
            results[f'{name}_error'] = f'{type(e).__name__}: {e}'
        added = {k: v for k, v in results.items() if k not in before}
        print(f'[{name}: {time.perf_counter() - start:.0f} s] {json.dumps(added)}', file=sys.stderr, flush=True)
        if json_path:
            json_path.write_text(json.dumps(results, indent=1))
    return failed
