"""Peak RSS of a training step, ours vs the reference, each measured in a fresh process
(`benchmarks/run.py --rss-child`)."""
import argparse
import os
import subprocess
import sys

from benchmarks.contenders import (
    default_train_config,
    our_dan_module,
    our_train_step,
    random_batch,
    reference_train_step,
    train_accelerator,
)
from benchmarks.harness import ROOT


def child(kind: str, batch_size: int) -> None:
    """Runs in a fresh interpreter: three training steps of `kind`, then prints the peak RSS in MiB."""
    cfg = default_train_config()
    images, labels = random_batch(batch_size)
    if kind == 'reference':
        step = reference_train_step(images, labels, cfg)
    else:
        step = our_train_step(train_accelerator(cfg, 'cpu'), cfg, our_dan_module(cfg), images, labels)
    for _ in range(3):
        step()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec
    peak_kib = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:'))
    print(peak_kib / 1024)


def run(args: argparse.Namespace, results: dict) -> None:
    peak = {}
    for kind in ('reference', 'ours'):
        command = [sys.executable, str(ROOT / 'benchmarks' / 'run.py'), '--rss-child', kind,
                   '--batch-size', str(args.batch_size)]
        out = subprocess.run(command, check=True, capture_output=True, text=True,
                             env=dict(os.environ, HF_HUB_OFFLINE='1'))
        peak[kind] = float(out.stdout.strip().splitlines()[-1])
    results['peak_rss_mib'] = peak
    results['peak_rss_ours_over_reference'] = peak['ours'] / peak['reference']
