"""The device pipeline (`--device-data on`) against our DataLoader pipeline, from the same decoded cache to what
the model takes: images/s, and on a CPU images per CPU-second of all the processes involved (workers included),
the comparison "per core" (`device_over_loader_per_core`: the device pipeline on one torch thread, as each
DataLoader worker runs; on more threads OpenMP's waiting threads spin and count as CPU time too)."""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import cpu_seconds, device_sync


def run(args: argparse.Namespace, results: dict) -> None:
    """One decoded split of the JPEG tree; per round each pipeline runs one epoch (alternating order), its wall and
    CPU time measured; medians. The DataLoader pipeline runs `--data-workers` workers, the device one none (on a
    CPU it runs on torch's intra-op threads instead)."""
    from benchmarks.data_pipeline import device_loader, drain, our_loader, tree_dataset, write_jpeg_tree
    from timm_dan.data import decode_to_arrow

    device = torch.device(args.device)
    sync = device_sync(device)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_tree(Path(tmp) / 'faces', args.data_images)
        decoded = decode_to_arrow(tree_dataset(root, save_to=Path(tmp) / 'arrow'))
        loaders = {'loader': our_loader(decoded, 224, args.batch_size, args.data_workers, device),
                   'device': device_loader(decoded, 224, args.batch_size, str(device))}
        threads = {'loader': torch.get_num_threads(), 'device': torch.get_num_threads()}
        if device.type == 'cpu':
            loaders['device (1 thread)'] = loaders['device']
            threads['device (1 thread)'] = 1
        for loader, consume in loaders.values():  # warm-up: workers started, first batches made
            drain(loader, consume)
        wall, cpu, counts = {name: [] for name in loaders}, {name: [] for name in loaders}, {}
        for r in range(args.data_rounds):
            for name in (list(loaders) if r % 2 == 0 else list(loaders)[::-1]):
                torch.set_num_threads(threads[name])
                start, start_cpu = time.perf_counter(), cpu_seconds()
                counts[name] = drain(*loaders[name])
                sync()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(cpu_seconds() - start_cpu)
        torch.set_num_threads(threads['loader'])
    ips = {name: counts[name] / statistics.median(wall[name]) for name in loaders}
    results['device_data_images_per_s'] = ips
    results['device_over_loader'] = ips['device'] / ips['loader']
    if device.type == 'cpu':
        per_cpu_s = {name: counts[name] / statistics.median(cpu[name]) for name in loaders}
        results['device_data_images_per_cpu_s'] = per_cpu_s
        results['device_over_loader_per_core'] = per_cpu_s['device (1 thread)'] / per_cpu_s['loader']
