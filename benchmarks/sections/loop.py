"""The training loop: our default train step fed by our DataLoader pipeline (JPEG tree, BatchCollate, workers,
DeviceNormalize) and by the device pipeline (the tree's decoded cache on the device, `DeviceBatches`), data loading
included, vs the same step on one in-memory batch, excluded."""
import argparse
import tempfile
from pathlib import Path

from benchmarks.contenders import default_train_config, our_dan_module, prepare_train_step, train_accelerator
from benchmarks.harness import device_sync, interleaved_medians


def run(args: argparse.Namespace, results: dict) -> None:
    from benchmarks.data_pipeline import device_loader, our_loader, tree_dataset, write_jpeg_tree
    from timm_dan.data import decode_to_arrow

    cfg = default_train_config(compile=args.compile)
    accelerator = train_accelerator(cfg, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_tree(Path(tmp) / 'faces', args.batch_size * args.loop_batches)
        device = accelerator.device
        loader, normalize = our_loader(tree_dataset(root), 224, args.batch_size, args.data_workers, device)
        on_device, _ = device_loader(decode_to_arrow(tree_dataset(root, save_to=Path(tmp) / 'arrow')), 224,
                                     args.batch_size, str(device))
        step = prepare_train_step(accelerator, cfg, our_dan_module(cfg))
        images, labels = normalize(next(iter(loader)))

        def with_loader():
            for batch_images, batch_labels in map(normalize, loader):
                step(batch_images, batch_labels)

        def with_device_pipeline():
            for batch_images, batch_labels in on_device:
                step(batch_images, batch_labels)

        def in_memory():
            for _ in range(len(loader)):
                step(images, labels)
        seconds = interleaved_medians({'data included': with_loader, 'device pipeline (data included)':
                                       with_device_pipeline, 'data excluded': in_memory},
                                      max(2, args.rounds // 2), device_sync(device))
    images_per_epoch = len(loader) * args.batch_size
    ips = {k: images_per_epoch / v for k, v in seconds.items()}
    results['loop_images_per_s'] = ips
    results['loop_device_over_in_memory'] = ips['device pipeline (data included)'] / ips['data excluded']
