"""The cores a process may use (affinity, cgroup quota), the threads it takes, and the machine class."""
import pytest
import torch

import timm_dan.cpu as cpu


@pytest.fixture
def two_of_eight(monkeypatch):
    monkeypatch.setattr(cpu.os, 'sched_getaffinity', lambda pid: set(range(8)))
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)


def test_affinity_and_quota(two_of_eight, monkeypatch):
    monkeypatch.setattr(cpu, '_cgroup_quota', lambda: None)
    assert cpu.available_cpus() == 8
    monkeypatch.setattr(cpu, '_cgroup_quota', lambda: 2.5)  # a container limited to 2.5 CPUs
    assert cpu.available_cpus() == 2
    monkeypatch.setattr(cpu, '_cgroup_quota', lambda: 0.5)
    assert cpu.available_cpus() == 1


def test_threads_ignore_omp_num_threads_and_split_among_local_processes(two_of_eight, monkeypatch):
    monkeypatch.setattr(cpu, '_cgroup_quota', lambda: None)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # what accelerate launch exports without a GPU
    assert cpu.resolve_threads() == 8
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '3')
    assert cpu.resolve_threads() == 2 and cpu.resolve_threads(reserved=1) == 1
    assert cpu.resolve_threads(5) == 5  # explicit wins
    with pytest.raises(ValueError, match='threads must be >= 1'):
        cpu.resolve_threads(0)


def test_set_threads_sets_torch(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert cpu.set_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize('flags, expected', [
    ({'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16'}, 'amx'),
    ({'avx2', 'avx512f', 'avx512_bf16'}, 'avx512_bf16'),
    ({'avx2', 'avx512f'}, 'avx512'),
    ({'avx2', 'fma'}, 'avx2'),
    (set(), 'generic'),
])
def test_machine_class(flags, expected, monkeypatch):
    monkeypatch.setattr(cpu, 'cpu_flags', lambda: frozenset(flags))
    assert cpu.machine_class() == expected
    assert cpu.machine_class(torch.device('cuda')) == 'cuda'
    assert expected in cpu.MACHINE_CLASSES


def test_cgroup_quota_reads_v2_and_v1(tmp_path, monkeypatch):
    real_path = cpu.Path

    def fake(path):
        return real_path(str(path).replace('/sys/fs/cgroup', str(tmp_path)))
    monkeypatch.setattr(cpu, 'Path', fake)
    assert cpu._cgroup_quota() is None
    (tmp_path / 'cpu').mkdir()
    (tmp_path / 'cpu' / 'cpu.cfs_quota_us').write_text('150000\n')
    (tmp_path / 'cpu' / 'cpu.cfs_period_us').write_text('100000\n')
    assert cpu._cgroup_quota() == 1.5
    (tmp_path / 'cpu.max').write_text('max 100000\n')
    assert cpu._cgroup_quota() == 1.5  # v2 unlimited: v1's limit still applies
    (tmp_path / 'cpu.max').write_text('300000 100000\n')
    assert cpu._cgroup_quota() == 3.0


_MMAPPED_PROBE = '''
import ctypes, json, sys
import timm_dan.cpu as cpu
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def mmapped(size):  # glibc marks a chunk served by its own mmap in the size word before it (IS_MMAPPED, 0x2)
    pointer = libc.malloc(size)
    flag = ctypes.c_size_t.from_address(pointer - ctypes.sizeof(ctypes.c_size_t)).value & 2
    libc.free(pointer)
    return bool(flag)

before = mmapped(24 << 20)
applied = cpu.keep_freed_memory()
print(json.dumps([before, applied, mmapped(30 << 20)]))
'''


@pytest.mark.skipif(cpu.platform.libc_ver()[0] != 'glibc', reason='glibc malloc only')
@pytest.mark.parametrize('env, expected', [
    ({}, [True, True, False]),  # a 30 MiB block then comes from the heap, not from a fresh mmap
    ({'MALLOC_ARENA_MAX': '2'}, [True, False, True]),  # the user tuned malloc: left alone
])
def test_keep_freed_memory_serves_large_blocks_from_the_heap(env, expected):
    import json
    import os
    import subprocess
    import sys
    clean = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_') and k != 'GLIBC_TUNABLES'}
    done = subprocess.run([sys.executable, '-c', _MMAPPED_PROBE], env={**clean, **env}, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == expected


def test_keep_freed_memory_leaves_other_allocators_alone(monkeypatch):
    monkeypatch.setattr(cpu.platform, 'libc_ver', lambda: ('', ''))  # musl, macOS
    assert cpu.keep_freed_memory() is False
    monkeypatch.setattr(cpu.platform, 'libc_ver', lambda: ('glibc', '2.36'))
    monkeypatch.setenv('LD_PRELOAD', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2')  # a preloaded allocator
    assert cpu.keep_freed_memory() is False


def test_exit_now_keeps_the_exit_code_atexit_and_buffered_output():
    import subprocess
    import sys
    code = ('import atexit, sys; from timm_dan.cpu import exit_now; atexit.register(lambda: print("atexit ran"));'
            'sys.stdout.write("buffered"); exit_now(3)')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert done.returncode == 3 and done.stdout == 'bufferedatexit ran\n'
