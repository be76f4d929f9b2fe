"""What this machine's CPU offers the process: the cores it may run on, its instruction-set class, and how many
compute threads a process should use.

`accelerate launch` on a machine without a GPU (and without `--cpu`) exports OMP_NUM_THREADS=1, so torch would
run on one core; `resolve_threads` counts the cores the process may really use (CPU affinity, cgroup quota),
divides them among the local processes, and ignores that variable (an explicit `threads` wins).
"""
import functools
import math
import os
from pathlib import Path
from typing import Optional

import torch

__all__ = ['available_cpus', 'local_processes', 'resolve_threads', 'set_threads', 'cpu_flags', 'machine_class',
           'MACHINE_CLASSES']

MACHINE_CLASSES = ('cuda', 'amx', 'avx512_bf16', 'avx512', 'avx2', 'generic')
"""Instruction-set classes, fastest first: each has its own fast paths and benchmark targets."""


def _cgroup_quota() -> Optional[float]:
    """CPUs allowed by the cgroup's CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), or None when unlimited."""
    for path, read in ((Path('/sys/fs/cgroup/cpu.max'), lambda text: text.split()),
                       (Path('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'), lambda text: [
                           text.strip(), Path('/sys/fs/cgroup/cpu/cpu.cfs_period_us').read_text().strip()])):
        try:
            quota, period = read(path.read_text())[:2]
        except (OSError, ValueError):
            continue
        if quota not in ('max', '-1') and float(period) > 0:
            return float(quota) / float(period)
    return None


def available_cpus() -> int:
    """The cores this process may run on: its CPU affinity, bounded by the cgroup's quota (containers)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def local_processes() -> int:
    """Processes of this run on this machine (`LOCAL_WORLD_SIZE`, set by torchrun and `accelerate launch`)."""
    try:
        return max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1')))
    except ValueError:
        return 1


def resolve_threads(threads: Optional[int] = None, reserved: int = 0) -> int:
    """Compute threads for this process: `threads` when given, else the available cores divided among the local
    processes, less `reserved` cores (e.g. for data-loading workers), at least 1."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f'threads must be >= 1, got {threads}')
        return threads
    return max(1, available_cpus() // local_processes() - reserved)


def set_threads(threads: Optional[int] = None, reserved: int = 0) -> int:
    """`torch.set_num_threads(resolve_threads(threads, reserved))`; returns the count."""
    count = resolve_threads(threads, reserved)
    torch.set_num_threads(count)
    return count


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo on Linux; empty elsewhere), read once per process."""
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith('flags')), '')
    return frozenset(line.partition(':')[2].split())


def machine_class(device: Optional[torch.device] = None) -> str:
    """'cuda' for a CUDA device; else the CPU's class: 'amx' (AMX tiles), 'avx512_bf16', 'avx512', 'avx2' or
    'generic'."""
    if device is not None and torch.device(device).type == 'cuda':
        return 'cuda'
    flags = cpu_flags()
    if 'amx_bf16' in flags:
        return 'amx'
    if 'avx512_bf16' in flags:
        return 'avx512_bf16'
    if 'avx512f' in flags:
        return 'avx512'
    if 'avx2' in flags:
        return 'avx2'
    return 'generic'
