"""Train DAN with Accelerate: the paper's recipes, on one CPU or many GPUs, resumable and measured.

    accelerate launch train_scripts/train.py          # the synthetic demo (train_scripts/configs/synthetic.yaml)
    accelerate launch train_scripts/train.py --config train_scripts/configs/rafdb.yaml \\
        --data-dir /data/RAF-DB/basic --output-dir runs/rafdb [--epochs 2 --batch-size 64 --seed 1 ...]
    accelerate launch train_scripts/train.py --output-dir runs/rafdb --config ... --resume

Without --config, train_scripts/configs/synthetic.yaml is used. Every config key is also a command-line option;
those given override the config file. Writes metrics.jsonl, the best epoch's
confusion matrix, checkpoints/ and best/ (a timm Hub folder) in --output-dir.
"""
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ''):  # run as a script: import `timm_dan` from this checkout, and never take this
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # folder's evaluate.py for the `evaluate` library

import timm  # noqa: E402
import torch  # noqa: E402
from accelerate import Accelerator, DataLoaderConfiguration  # noqa: E402
from accelerate.utils import set_seed  # noqa: E402
from timm.utils import ModelEmaV3, distribute_bn  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from timm_dan.data import DeviceNormalize  # noqa: E402
from timm_dan.metrics import load_fer_metrics  # noqa: E402
from timm_dan.precision import accelerate_mixed_precision  # noqa: E402
from timm_dan.training import (  # noqa: E402
    DANTrainModule,
    TrainStep,
    config_to_dict,
    create_loss,
    create_optimizer,
    create_scheduler,
    create_train_model,
    flat_config,
    latest_checkpoint,
    load_checkpoint,
    parse_config,
    predict_loader,
    replica_checksums,
    resolve_channels_last,
    save_checkpoint,
    split_batch_size,
)
from timm_dan.training.config import ConfigError  # noqa: E402
from timm_dan.training.data import create_loader, load_splits  # noqa: E402
from timm_dan.training.reporting import (  # noqa: E402
    append_metrics,
    best_summary,
    export_best,
    truncate_metrics,
    write_confusion_matrix,
)

DEFAULT_CONFIG = Path(__file__).resolve().parent / 'configs' / 'synthetic.yaml'


def evaluate_split(accelerator, model, loader, num_classes, channels_last):
    metric = load_fer_metrics()
    outputs = predict_loader(accelerator, model, loader, channels_last=channels_last)
    metric.add_batch(predictions=outputs['predictions'].tolist(), references=outputs['references'].tolist())
    return metric.compute(num_classes=num_classes)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == '--config' or a.startswith('--config=') for a in argv):
        argv = ['--config', str(DEFAULT_CONFIG)] + argv
    cfg = parse_config(argv, description=__doc__)
    output_dir = Path(cfg.output_dir or f'runs/{cfg.dataset}')
    if cfg.deterministic:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.backends.cudnn.benchmark = False

    accelerator = Accelerator(
        mixed_precision=accelerate_mixed_precision(cfg.precision),
        gradient_accumulation_steps=cfg.grad_accum_steps,
        log_with=cfg.report_to,
        project_dir=str(output_dir),
        step_scheduler_with_optimizer=False,  # the recipes' schedules are per epoch
        dynamo_backend='inductor' if cfg.compile else None,
        dataloader_config=DataLoaderConfiguration(non_blocking=True),  # from pinned memory: copies overlap compute
    )
    channels_last = resolve_channels_last(cfg.channels_last)
    set_seed(cfg.seed, deterministic=cfg.deterministic)

    # everything that can be wrong with the inputs fails here, before any training
    micro_batch, _ = split_batch_size(cfg, accelerator.num_processes)
    resume_from = None
    if cfg.resume:
        resume_from = latest_checkpoint(output_dir / 'checkpoints') if cfg.resume == 'latest' else Path(cfg.resume)
        if resume_from is None or not resume_from.is_dir():
            raise ConfigError(f'--resume: no checkpoint found at {resume_from or output_dir / "checkpoints"}')
    with accelerator.main_process_first():
        splits = load_splits(cfg)
    model = create_train_model(cfg)
    if len(splits['train']) < cfg.batch_size:
        raise ConfigError(f'the training split has {len(splits["train"])} images, fewer than one batch '
                          f'({cfg.batch_size}); lower --batch-size')
    data_config = timm.data.resolve_model_data_config(model)
    data_config['input_size'] = (data_config['input_size'][0], cfg.image_size, cfg.image_size)
    normalize = DeviceNormalize(data_config)  # the loaders' uint8 batches -> normalised float, on the device
    loss_fn = create_loss(cfg, model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer(cfg, model, loss_fn)
    train_loader = create_loader(splits['train'], data_config, micro_batch, is_training=True, recipe=cfg.recipe,
                                 num_workers=cfg.num_workers, seed=cfg.seed, balanced_sampler=cfg.balanced_sampler)
    steps_per_epoch = len(train_loader) // (accelerator.num_processes * cfg.grad_accum_steps)
    scheduler = create_scheduler(cfg, optimizer, steps_per_epoch)
    per_step_schedule = cfg.scheduler == 'onecycle'
    epoch_seeded = (train_loader.sampler, train_loader.dataset)  # both take set_epoch
    eval_loaders = {role: create_loader(splits[role], data_config, 2 * micro_batch, is_training=False,
                                        num_workers=cfg.num_workers)
                    for role in ('validation', 'test') if role in splits}

    module, optimizer, train_loader, scheduler = accelerator.prepare(
        DANTrainModule(model, loss_fn), optimizer, train_loader, scheduler)
    eval_loaders = {role: accelerator.prepare(loader) for role, loader in eval_loaders.items()}
    unwrapped = accelerator.unwrap_model(module)
    ema = ModelEmaV3(unwrapped.model, decay=cfg.ema_decay) if cfg.ema else None
    step = TrainStep(accelerator, module, optimizer, clip_grad=cfg.clip_grad, ema=ema, channels_last=channels_last,
                     skip_nonfinite=cfg.skip_nonfinite, step_seed=cfg.seed if cfg.deterministic else None)

    start_epoch, skip_batches, best = 0, 0, {'epoch': None, 'value': -math.inf}
    if resume_from is not None:
        state = load_checkpoint(accelerator, resume_from, ema=ema)
        start_epoch, skip_batches, best = state['epoch'], state['batch'], state['best']
        step.load_state_dict(state['step'])
        accelerator.print(f'Resumed from {resume_from}: epoch {start_epoch + 1}, batch {skip_batches}')
        if accelerator.is_main_process:
            truncate_metrics(output_dir, start_epoch)
    elif accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / 'metrics.jsonl').unlink(missing_ok=True)
        if (output_dir / 'checkpoints').is_dir():  # an earlier run's: never resume into a mix of two runs
            print(f'Starting afresh in {output_dir}: removing the checkpoints of an earlier run there '
                  f'(pass --resume to continue it instead)')
            shutil.rmtree(output_dir / 'checkpoints')
    if accelerator.is_main_process:
        (output_dir / 'config.json').write_text(json.dumps(config_to_dict(cfg), indent=1))
    if cfg.report_to:
        accelerator.init_trackers(output_dir.name, config=flat_config(cfg))

    accelerator.print(
        f'Training {cfg.model} on {cfg.dataset} ({len(splits["train"])} train / {len(splits["validation"])} '
        f'validation images, {splits.split_names["validation"]}) for {cfg.epochs} epochs on '
        f'{accelerator.num_processes} x {accelerator.device}, precision {accelerator.mixed_precision}, '
        f'channels_last {channels_last}, global batch {cfg.batch_size}')

    def checkpoint(epoch: int, batch: int) -> None:
        step.check_finite()  # never save a state that a non-finite loss has corrupted
        train_state = {'epoch': epoch, 'batch': batch, 'best': best, 'step': step.state_dict()}
        save_checkpoint(accelerator, output_dir / 'checkpoints', step.optimizer_steps, train_state, ema=ema,
                        keep=cfg.keep_checkpoints)

    eval_model = ema.module if ema is not None else unwrapped.model
    val_metrics = None
    for epoch in range(start_epoch, cfg.epochs):
        loader = accelerator.skip_first_batches(train_loader, skip_batches) if skip_batches else train_loader
        loader.set_epoch(epoch)  # Accelerate's loader re-sets its sampler's epoch from this on every pass
        for seeded in epoch_seeded:  # ... and these, however deeply Accelerate wrapped them
            seeded.set_epoch(epoch)
        module.train()
        lr = optimizer.param_groups[0]['lr']
        progress = tqdm(total=len(train_loader), initial=skip_batches, desc=f'epoch {epoch + 1}/{cfg.epochs}',
                        disable=not accelerator.is_local_main_process, dynamic_ncols=True)
        start, images_seen = time.perf_counter(), 0
        for batch, (images, labels) in enumerate(map(normalize, loader), start=skip_batches):
            step(images, labels)
            images_seen += images.shape[0] * accelerator.num_processes
            progress.update(1)
            if (batch + 1) % cfg.log_every == 0:
                progress.set_postfix(loss=f'{step.peek_loss():.3f}',
                                     img_s=f'{images_seen / (time.perf_counter() - start):.1f}')
            at_boundary = accelerator.sync_gradients
            if at_boundary and per_step_schedule:
                scheduler.step()
            if at_boundary and cfg.checkpoint_steps and step.optimizer_steps % cfg.checkpoint_steps == 0 \
                    and batch + 1 < len(train_loader):
                checkpoint(epoch, batch + 1)
            if cfg.max_train_steps and step.optimizer_steps >= cfg.max_train_steps:
                break
        progress.close()
        skip_batches = 0
        train_time = time.perf_counter() - start
        if not per_step_schedule:
            scheduler.step()
        step.check_finite()
        losses = step.read_losses()
        if accelerator.num_processes > 1:  # BatchNorm statistics are per process: average them before evaluating
            for bn_model in (unwrapped, ema):
                if bn_model is not None:
                    distribute_bn(bn_model, accelerator.num_processes, reduce=True)

        val_metrics = evaluate_split(accelerator, eval_model, map(normalize, eval_loaders['validation']),
                                     cfg.num_classes, channels_last)
        record = {
            'epoch': epoch + 1, 'step': step.optimizer_steps, 'lr': lr,
            **{f'train_{k}': v for k, v in losses.items()},
            'train_images_per_s': images_seen / max(train_time, 1e-9),
            'validation': {k: v for k, v in val_metrics.items() if k != 'confusion_matrix'},
        }
        improved = val_metrics[cfg.select_metric] > best['value']
        if improved:
            best = {'epoch': epoch + 1, 'value': val_metrics[cfg.select_metric]}
        if accelerator.is_main_process:
            append_metrics(output_dir, record)
            if improved:
                write_confusion_matrix(output_dir, val_metrics, splits.label_names,
                                       f'{cfg.dataset} {splits.split_names["validation"]}, epoch {epoch + 1}')
                export_best(eval_model, output_dir, cfg, {'validation': val_metrics}, splits.split_names,
                            splits.label_names, data_config, epoch + 1)
        accelerator.print(
            f'epoch {epoch + 1}: loss {losses["loss"]:.4f} (ce {losses["ce"]:.4f}, affinity {losses["affinity"]:.4f}, '
            f'partition {losses["partition"]:.4f}), validation accuracy {val_metrics["accuracy"]:.4f}, '
            f'mean class accuracy {val_metrics["mean_class_accuracy"]:.4f}'
            + (' (best)' if improved else ''))
        if cfg.report_to:
            accelerator.log({**{f'train/{k}': v for k, v in losses.items()}, 'lr': lr,
                             **{f'validation/{k}': val_metrics[k] for k in ('accuracy', 'mean_class_accuracy',
                                                                            'macro_f1')}}, step=epoch + 1)
        checkpoint(epoch + 1, 0)
        if cfg.max_train_steps and step.optimizer_steps >= cfg.max_train_steps:
            break

    checksums = replica_checksums(accelerator, module)
    if any(len(set(values)) > 1 for values in checksums.values()):
        raise RuntimeError(f'the processes ended with different weights: {checksums}')
    results = finish(accelerator, cfg, output_dir, eval_loaders, splits, data_config, best, channels_last,
                     checksums)
    accelerator.end_training()
    return 0 if results is not None else 1


def finish(accelerator, cfg, output_dir, eval_loaders, splits, data_config, best, channels_last, checksums):
    """Evaluate the selected weights (best/) on validation and test, rewrite the card, print where it went."""
    best_dir = output_dir / 'best'
    accelerator.wait_for_everyone()
    if best['epoch'] is None or not (best_dir / 'model.safetensors').is_file():
        accelerator.print('No epoch completed: nothing exported.')
        return None
    model = timm.create_model(f'local-dir:{best_dir}', pretrained=True).to(accelerator.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    normalize = DeviceNormalize(data_config)
    results = {role: evaluate_split(accelerator, model, map(normalize, loader), cfg.num_classes, channels_last)
               for role, loader in eval_loaders.items()}
    if accelerator.is_main_process:
        if 'test' in results:
            write_confusion_matrix(output_dir, results['test'], splits.label_names,
                                   f'{cfg.dataset} {splits.split_names["test"]}, best epoch {best["epoch"]}',
                                   stem='confusion_matrix_test')
        export_best(model, output_dir, cfg, results, splits.split_names, splits.label_names, data_config,
                    best['epoch'])
        summary = {'best_epoch': best['epoch'], 'split_names': splits.split_names, **best_summary(results),
                   'num_processes': accelerator.num_processes, 'process_checksums': checksums}
        (output_dir / 'results.json').write_text(json.dumps(summary, indent=1))
        lines = [f'{role} ({splits.split_names[role]}): ' + ', '.join(
            f'{k} {v:.4f}' for k, v in values.items() if k != 'num_samples')
            for role, values in best_summary(results).items()]
        print('\n'.join([
            f'Best epoch {best["epoch"]} (selected on {splits.split_names["validation"]}):', *lines,
            f'The model is in {best_dir}/ (config.json, model.safetensors, README.md). Load it with:',
            f'    import timm, timm_dan; model = timm.create_model("local-dir:{best_dir}", pretrained=True)',
            f'or evaluate it: python train_scripts/evaluate.py --model local-dir:{best_dir} --dataset {cfg.dataset}'
            + (f' --data-dir {cfg.data_dir}' if cfg.data_dir else '')
            + (f" --dataset-options '{json.dumps(cfg.dataset_options)}'" if cfg.dataset_options else '')
            + f' --split {cfg.test_split or cfg.val_split}',
        ]))
    return results


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (ConfigError, FileNotFoundError) as e:  # bad input: a message, not a traceback
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
