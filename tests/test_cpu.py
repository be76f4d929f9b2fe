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
