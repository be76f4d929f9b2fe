"""What this machine's CPU offers the process: the cores it may run on, its instruction-set class, and how many
compute threads a process should use.

`accelerate launch` on a machine without a GPU (and without `--cpu`) exports OMP_NUM_THREADS=1, so torch would
run on one core; `resolve_threads` counts the cores the process may really use (CPU affinity, cgroup quota),
divides them among the local processes, and ignores that variable (an explicit `threads` wins).
`keep_freed_memory` stops glibc from handing a training step's freed buffers back to the kernel, only to fault
them in again (zeroed, page by page) on the next step; `exit_now` ends a script without CPython's final garbage
collection.
"""
import ctypes
import functools
import gc
import math
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional, Union

if TYPE_CHECKING:
    import torch

__all__ = ['available_cpus', 'local_processes', 'resolve_threads', 'set_threads', 'keep_freed_memory', 'exit_now',
           'cpu_flags', 'machine_class', 'MACHINE_CLASSES']

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
    import torch  # here, so that the command line's light modules may import this one
    count = resolve_threads(threads, reserved)
    torch.set_num_threads(count)
    return count


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)
_MMAP_THRESHOLD_MAX = 32 << 20  # the largest M_MMAP_THRESHOLD glibc accepts on 64-bit systems
_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Keep freed memory in the process: blocks up to 32 MiB come from the heap instead of fresh mmaps, and the heap
    is not trimmed until 1 GiB lies free at its top (glibc `mallopt`). Returns whether it applied.

    By default glibc returns large freed blocks to the kernel, so every training step faults its activations and
    gradients in again, zero-filled page by page: 28 000 page faults and 100 ms of system time per step of the 64 px
    demo, 230 and 4 ms with this, the step x1.06 (`benchmarks/allocator.py`, AVX2 Zen 3). It does nothing where
    malloc is not glibc's, or where the user has chosen already (a MALLOC_ variable, glibc.malloc tunables, a
    preloaded allocator).
    """
    tuned = any(name.startswith('MALLOC_') for name in os.environ) or 'glibc.malloc' in os.environ.get(
        'GLIBC_TUNABLES', '') or 'malloc' in os.environ.get('LD_PRELOAD', '')
    if tuned or platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def exit_now(code: int = 0) -> NoReturn:
    """`sys.exit(code)` after `gc.freeze()`: the interpreter's last collections over the millions of objects that
    torch, timm and transformers create took 2-3 s of every script's exit on a 2-core CPU (0.5 s after it). For a
    script's `__main__` only: what was alive is then never collected, which is what an exiting process wants."""
    gc.freeze()
    sys.exit(code)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo on Linux; empty elsewhere), read once per process."""
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith('flags')), '')
    return frozenset(line.partition(':')[2].split())


def machine_class(device: Union[str, 'torch.device', None] = None) -> str:
    """'cuda' for a CUDA device; else the CPU's class: 'amx' (AMX tiles), 'avx512_bf16', 'avx512', 'avx2' or
    'generic'."""
    if device is not None and str(device).partition(':')[0] == 'cuda':
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
