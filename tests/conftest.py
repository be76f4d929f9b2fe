"""Shared test set-up: offline Hub, torch's threads, Accelerate's state, helpers for running the CLI and scripts in a
subprocess."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')

REPO_ROOT = Path(__file__).resolve().parents[1]


TEST_THREADS = min(2, len(os.sched_getaffinity(0)))
"""torch threads of the tests (and their subprocesses): the CI machine's 2 cores, or fewer."""


@pytest.fixture(scope='session', autouse=True)
def torch_threads() -> int:
    """Run every test's torch ops on `TEST_THREADS` threads, so that results and run times do not depend on the
    size of the machine."""
    import torch
    torch.set_num_threads(TEST_THREADS)
    return TEST_THREADS


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def subprocess_env(tmp_path) -> dict:
    """Environment for `python -m timm_dan` / script subprocesses: this checkout first on the path, offline."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT), env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    env['HF_HUB_OFFLINE'] = '1'
    env['HF_HOME'] = str(tmp_path / 'hf_home')
    env['OMP_NUM_THREADS'] = env.get('OMP_NUM_THREADS', str(TEST_THREADS))
    return env


@pytest.fixture(scope='session')
def python() -> str:
    return sys.executable


@pytest.fixture
def fresh_accelerator_state():
    """Accelerate keeps one process-wide state; tests that build an Accelerator in-process must not share it."""
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)
