"""The training loop: our default train step fed by our loader (JPEG tree, BatchCollate, workers,
DeviceNormalize), data loading included, vs the same step on one in-memory batch, excluded."""
import argparse
import tempfile
from pathlib import Path

from benchmarks.contenders import default_train_config, our_dan_module, prepare_train_step, train_accelerator
from benchmarks.harness import device_sync, interleaved_medians


def run(args: argparse.Namespace, results: dict) -> None:
    from benchmarks.data_pipeline import our_loader, tree_dataset, write_jpeg_tree

    cfg = default_train_config(compile=args.compile)
    accelerator = train_accelerator(cfg, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_tree(Path(tmp) / 'faces', args.batch_size * args.loop_batches)
        device = accelerator.device
        loader, normalize = our_loader(tree_dataset(root), 224, args.batch_size, args.data_workers, device)
        step = prepare_train_step(accelerator, cfg, our_dan_module(cfg))
        images, labels = normalize(next(iter(loader)))

        def with_loader():
            for batch_images, batch_labels in map(normalize, loader):
                step(batch_images, batch_labels)

        def in_memory():
            for _ in range(len(loader)):
                step(images, labels)
        seconds = interleaved_medians({'data included': with_loader, 'data excluded': in_memory},
                                      max(2, args.rounds // 2), device_sync(device))
    images_per_epoch = len(loader) * args.batch_size
    results['loop_images_per_s'] = {k: images_per_epoch / v for k, v in seconds.items()}
