"""The input pipeline: our loader -> batch transforms -> DeviceNormalize vs ImageFolder + PIL, from JPEG files to
what the model takes (the pipelines: `benchmarks/data_pipeline.py`)."""
import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import device_sync, interleaved_medians


def run(args: argparse.Namespace, results: dict) -> None:
    """Images/s from JPEG files to what the model takes, on `--device`: the baseline's float batches moved there,
    ours normalised there by DeviceNormalize (timed with the loader); ours also from the opt-in decoded cache,
    whose one-off build (`decode_to_arrow`, one process) is reported apart as `data_cache_build_s`."""
    from benchmarks.data_pipeline import baseline_loader, drain, our_loader, tree_dataset, write_jpeg_tree
    from timm_dan.data import decode_to_arrow

    device = torch.device(args.device)
    pin = device.type == 'cuda'

    def to_device(batch):
        return tuple(t.to(device, non_blocking=pin) for t in batch)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_tree(Path(tmp) / 'faces', args.data_images)
        on_disk = tree_dataset(root, save_to=Path(tmp) / 'arrow')
        start = time.perf_counter()
        cached = decode_to_arrow(on_disk)
        results['data_cache_build_s'] = time.perf_counter() - start
        loaders = {'baseline': (baseline_loader(root, 224, args.batch_size, args.data_workers, pin), to_device),
                   'ours': our_loader(tree_dataset(root), 224, args.batch_size, args.data_workers, device),
                   'ours (decoded cache)': our_loader(cached, 224, args.batch_size, args.data_workers, device)}
        counts = {}

        def epoch(name):
            counts[name] = drain(*loaders[name])
        seconds = interleaved_medians({name: (lambda n=name: epoch(n)) for name in loaders}, args.data_rounds,
                                      device_sync(device))
    ips = {k: counts[k] / v for k, v in seconds.items()}
    results['data_images_per_s'] = ips
    results['data_workers'] = args.data_workers
    results['data_over_baseline'] = ips['ours'] / ips['baseline']
    results['data_cached_over_baseline'] = ips['ours (decoded cache)'] / ips['baseline']
