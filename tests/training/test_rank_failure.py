"""A rank dies in a two-process run (gloo on CPU; NCCL on GPUs goes the same way).

With `accelerate launch --max_restarts 1` torch elastic restarts the group and `train.py --resume auto` continues
from the newest complete checkpoint by itself: the final weights equal an uninterrupted run's (deterministic mode).
Without an agent to stop it, the surviving rank exits with one clear line: at once when the dead rank's sockets
close, after `--ddp-timeout` seconds when the other rank hangs (SIGSTOP) instead of waiting forever.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]

ARGS = ['--dataset-options', '{num_samples: 64, num_validation_samples: 20, image_size: 32, num_classes: 8, seed: 0}',
        '--image-size', '32', '--batch-size', '16', '--num-workers', '0', '--epochs', '2', '--log-every', '1',
        '--precision', 'fp32', '--seed', '3', '--deterministic', '--checkpoint-steps', '3', '--keep-checkpoints',
        '10', '--lr', '0.01', '--ema', '--ema-decay', '0.9', '--resume', 'auto']  # 4 steps an epoch, 8 in all


@pytest.fixture
def env(subprocess_env):
    return dict(subprocess_env, OMP_NUM_THREADS='1', ACCELERATE_USE_CPU='1')


def _launch(out, port, max_restarts, *extra):
    return [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2',
            '--num_machines', '1', '--main_process_port', str(port), '--dynamo_backend', 'no', '--mixed_precision',
            'no', '--max_restarts', str(max_restarts), '--monitor_interval', '0.5', 'train_scripts/train.py',
            '--output-dir', str(out), *ARGS, *extra]


def _descendants(pid):
    children = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _environ(pid):
    try:
        return dict(item.split('=', 1) for item in
                    Path(f'/proc/{pid}/environ').read_bytes().decode(errors='replace').split('\0') if '=' in item)
    except OSError:
        return {}


def _wait_for(path, proc, timeout=600):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f'the run ended before {path} appeared'
        assert time.time() < deadline, f'{path} did not appear in {timeout} s'
        time.sleep(0.05)


def _final_weights(run):
    latest = max((run / 'checkpoints').glob('step_*'))
    weights = load_file(str(latest / 'model.safetensors'))
    weights.update({f'ema.{k}': v for k, v in load_file(str(latest / 'ema.safetensors')).items()})
    weights.update({f'best.{k}': v for k, v in load_file(str(run / 'best' / 'model.safetensors')).items()})
    return latest.name, weights


@pytest.mark.slow
@pytest.mark.timeout(2400)  # three two-process runs
def test_a_killed_rank_is_restarted_and_the_run_ends_as_if_uninterrupted(tmp_path, env):
    started = time.time()
    full = subprocess.run(_launch(tmp_path / 'full', 29541, 0), env=env, capture_output=True, text=True,
                          timeout=900, cwd=REPO)
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    uninterrupted = time.time() - started

    run = tmp_path / 'killed'
    started = time.time()
    proc = subprocess.Popen(_launch(run, 29542, 1), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO)
    try:
        _wait_for(run / 'checkpoints' / 'step_00000003' / 'train_state.json', proc)  # mid epoch 1 (batch 3 of 4)
        rank1 = [p for p in _descendants(proc.pid)
                 if _environ(p).get('RANK') == '1' and _environ(p).get('TORCHELASTIC_RESTART_COUNT') == '0'
                 and 'train.py' in Path(f'/proc/{p}/cmdline').read_bytes().decode(errors='replace')]
        assert len(rank1) == 1, rank1
        os.kill(rank1[0], signal.SIGKILL)
        assert not (run / 'checkpoints' / 'step_00000008').exists(), 'the run finished before the kill'
        output, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    interrupted = time.time() - started
    assert proc.returncode == 0, output[-4000:]
    assert 'Resumed from' in output and 'step_0000000' in output, output[-4000:]
    name_full, weights_full = _final_weights(tmp_path / 'full')
    name_resumed, weights_resumed = _final_weights(run)
    assert name_full == name_resumed == 'step_00000008'
    assert weights_full.keys() == weights_resumed.keys()
    for key in weights_full:
        assert torch.equal(weights_full[key], weights_resumed[key]), key
    print(f'\nuninterrupted run {uninterrupted:.0f} s; killed + restarted run {interrupted:.0f} s')


def _rank(out, rank, port, env, timeout_s):
    rank_env = dict(env, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), WORLD_SIZE='2', RANK=str(rank),
                    LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE='2')
    return subprocess.Popen([sys.executable, 'train_scripts/train.py', '--output-dir', str(out), *ARGS,
                             '--ddp-timeout', str(timeout_s)], env=rank_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize('fault, port', [(signal.SIGKILL, 29543), (signal.SIGSTOP, 29544)])
def test_without_restarts_the_survivor_exits_with_a_clear_message_in_bounded_time(tmp_path, env, fault, port):
    timeout_s = 20
    out = tmp_path / 'run'
    survivor, victim = _rank(out, 0, port, env, timeout_s), _rank(out, 1, port, env, timeout_s)
    try:
        _wait_for(out / 'checkpoints' / 'step_00000003' / 'train_state.json', survivor)
        os.kill(victim.pid, fault)
        faulted = time.time()
        output, _ = survivor.communicate(timeout=timeout_s + 120)
        waited = time.time() - faulted
    finally:
        for proc in (survivor, victim):
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert survivor.returncode == 3, output[-3000:]
    assert 'error: process 0 of 2 lost contact with the other processes' in output, output[-3000:]
    assert '--resume auto' in output and 'Traceback' not in output
    if fault == signal.SIGSTOP:  # a hung peer: bounded by the process group's timeout
        assert f'Timed out waiting {timeout_s * 1000}ms' in output or 'Timed out' in output, output[-2000:]
        assert waited < timeout_s + 60
    print(f'\n{signal.Signals(fault).name} of rank 1: rank 0 exited {waited:.1f} s later (--ddp-timeout {timeout_s})')
