"""One training run, in the calls `train_scripts/train.py` makes: `setup_run` (every input checked before anything
is trained or written), `resume_or_start`, then per epoch `train_one_epoch`, `validate`, `record_epoch` and
`TrainRun.checkpoint`, and at the end `finish_run` (the selected weights evaluated, exported and reported)."""
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

import timm
import torch
import torch.nn as nn
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import InitProcessGroupKwargs, broadcast_object_list, gather_object, set_seed
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader

from ..cpu import keep_freed_memory, set_threads
from ..models.pretrained import load_pretrained
from ..precision import accelerate_mixed_precision
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, config_to_dict, flat_config
from .data import RunSplits, count_without_va, create_run_loaders, load_splits
from .engine import LOSS_NAMES, DANTrainModule, TrainStep, replica_checksums, resolve_channels_last
from .factory import create_loss, create_optimizer, create_scheduler, create_train_model, split_batch_size
from .loop import compute_metrics, predict
from .reporting import (
    append_metrics,
    best_summary,
    calibrate_outputs,
    calibration_summary,
    export_best,
    measure_groups,
    truncate_metrics,
    write_confusion_matrix,
    write_reliability_diagram,
)

__all__ = ['TrainRun', 'setup_run', 'resume_or_start', 'record_epoch', 'finish_run', 'lost_processes_message']


@dataclass
class TrainRun:
    """What a run holds between its calls: the config, the prepared pieces and where training stands."""
    cfg: TrainConfig
    accelerator: Accelerator
    output_dir: Path
    splits: RunSplits
    data_config: dict[str, Any]
    normalize: Callable[[Any], tuple[torch.Tensor, torch.Tensor]]  # a loader's batch -> the model's input (data.py)
    module: nn.Module  # the prepared DANTrainModule (model and loss)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: DataLoader
    epoch_seeded: tuple[Any, ...]  # the training loader's sampler and dataset, which take set_epoch
    eval_loaders: dict[str, DataLoader]  # 'validation', and 'test' where the config has one
    step: TrainStep
    ema: Optional[ModelEmaV3] = None
    channels_last: bool = True
    resume_from: Optional[Path] = None
    start_epoch: int = 0
    skip_batches: int = 0  # batches of `start_epoch` trained before the checkpoint resumed from
    best: dict[str, Any] = field(default_factory=lambda: {'epoch': None, 'value': -math.inf})

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and exported: the EMA's when one is kept."""
        return self.ema.module if self.ema is not None else self.accelerator.unwrap_model(self.module).model

    @property
    def reached_max_steps(self) -> bool:
        return bool(self.cfg.max_train_steps) and self.step.optimizer_steps >= self.cfg.max_train_steps

    def checkpoint(self, epoch: int, batch: int = 0) -> Path:
        """Save `checkpoints/step_N` at `batch` of `epoch` (never a state that a non-finite loss has corrupted)."""
        self.step.check_finite()
        train_state = {'epoch': epoch, 'batch': batch, 'best': self.best, 'step': self.step.state_dict()}
        return save_checkpoint(self.accelerator, self.output_dir / 'checkpoints', self.step.optimizer_steps,
                               train_state, ema=self.ema, keep=self.cfg.keep_checkpoints)


def setup_run(cfg: TrainConfig) -> TrainRun:
    """The accelerator, data, model, loss, optimizer, schedule, loaders and train step of `cfg`, prepared.

    Everything that can be wrong with the inputs (batch size, `--resume`, data folder, classes) fails here with a
    `ConfigError` or `FileNotFoundError`, before any training and before anything is written.
    """
    output_dir = Path(cfg.output_dir or f'runs/{cfg.dataset}')
    if cfg.ddp_timeout <= 0:
        raise ConfigError(f'--ddp-timeout must be a positive number of seconds, got {cfg.ddp_timeout}')
    _init_restarted_process_group(cfg.ddp_timeout)
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
        # a process whose peers died or hang stops after this long instead of waiting forever
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=cfg.ddp_timeout))],
    )
    channels_last = resolve_channels_last(cfg.channels_last)
    set_threads(cfg.threads)
    if cfg.keep_freed_memory and accelerator.device.type == 'cpu':
        keep_freed_memory()
    set_seed(cfg.seed, deterministic=cfg.deterministic)

    micro_batch, _ = split_batch_size(cfg, accelerator.num_processes)
    if cfg.select_metric == 'va_ccc' and not cfg.va_head:
        raise ConfigError('select_metric va_ccc needs the valence/arousal head: set va_head: true')
    resume_from = _resume_target(cfg, accelerator, output_dir / 'checkpoints')
    with accelerator.main_process_first():
        splits = load_splits(cfg, accelerator.device)
    model = create_train_model(cfg)
    if len(splits['train']) < cfg.batch_size:
        raise ConfigError(f'the training split has {len(splits["train"])} images, fewer than one batch '
                          f'({cfg.batch_size}); lower --batch-size')
    data_config = timm.data.resolve_model_data_config(model)
    data_config['input_size'] = (data_config['input_size'][0], cfg.image_size, cfg.image_size)
    loss_fn = create_loss(cfg, model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer(cfg, model, loss_fn)
    loaders = create_run_loaders(cfg, splits, data_config, micro_batch, accelerator.device,
                                 agree=lambda fits: all(gather_object([fits])))
    accelerator.print(loaders.note)
    train_loader, eval_loaders = loaders.train, loaders.evaluation
    steps_per_epoch = len(train_loader) // (accelerator.num_processes * cfg.grad_accum_steps)
    scheduler = create_scheduler(cfg, optimizer, steps_per_epoch)
    epoch_seeded = (train_loader.sampler, train_loader.dataset)

    module, optimizer, train_loader, scheduler = accelerator.prepare(
        DANTrainModule(model, loss_fn), optimizer, train_loader, scheduler)
    eval_loaders = {role: accelerator.prepare(loader) for role, loader in eval_loaders.items()}
    ema = ModelEmaV3(accelerator.unwrap_model(module).model, decay=cfg.ema_decay) if cfg.ema else None
    step = TrainStep(accelerator, module, optimizer, clip_grad=cfg.clip_grad, ema=ema, channels_last=channels_last,
                     skip_nonfinite=cfg.skip_nonfinite, step_seed=cfg.seed if cfg.deterministic else None,
                     small_map_convs=False if cfg.compile else cfg.small_map_convs)
    return TrainRun(cfg, accelerator, output_dir, splits, data_config, loaders.normalize, module,
                    optimizer, scheduler, train_loader, epoch_seeded, eval_loaders, step, ema=ema,
                    channels_last=channels_last, resume_from=resume_from)


def _init_restarted_process_group(timeout_s: int) -> None:
    """After a torch elastic restart, start the process group on a store prefixed by the attempt (Accelerate then
    uses it as it is).

    The elastic agent keeps its TCPStore across restarts, and torch's env:// rendezvous no longer prefixes the
    workers' keys by attempt (torch/distributed/rendezvous.py, `_create_c10d_store`): a restarted process can read
    the address a dead one published and fail ("Gloo connectFullMesh failed ... Connection refused"), depending on
    which process starts first. Seen with torch 2.14, static and c10d rendezvous alike.
    """
    attempt = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0'))
    if not attempt or os.environ.get('TORCHELASTIC_USE_AGENT_STORE') != 'True' or torch.distributed.is_initialized():
        return
    use_cpu = os.environ.get('ACCELERATE_USE_CPU', '').lower() in ('1', 'true', 'yes')
    backend = 'nccl' if torch.cuda.is_available() and not use_cpu else 'gloo'
    world_size, rank, timeout = int(os.environ['WORLD_SIZE']), int(os.environ['RANK']), timedelta(seconds=timeout_s)
    store = torch.distributed.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']), world_size,
                                       is_master=False, timeout=timeout)
    torch.distributed.init_process_group(backend, store=torch.distributed.PrefixStore(f'attempt_{attempt}', store),
                                         rank=rank, world_size=world_size, timeout=timeout)


def _resume_target(cfg: TrainConfig, accelerator: Accelerator, checkpoint_dir: Path) -> Optional[Path]:
    """The checkpoint `cfg.resume` names: None (start afresh), 'latest' (the newest complete one, which must
    exist), 'auto' (the newest complete one if any) or a path. The main process decides for all, so that every
    process resumes from the same one."""
    if not cfg.resume:
        return None
    if cfg.resume in ('latest', 'auto'):
        found = [latest_checkpoint(checkpoint_dir) if accelerator.is_main_process else None]
        resume_from = broadcast_object_list(found)[0]
        if resume_from is None and cfg.resume == 'auto':
            accelerator.print(f'--resume auto: no complete checkpoint in {checkpoint_dir}: starting afresh')
            return None
    else:
        resume_from = Path(cfg.resume)
    if resume_from is None or not resume_from.is_dir():
        raise ConfigError(f'--resume: no checkpoint found at {resume_from or checkpoint_dir}')
    return resume_from


def lost_processes_message(error: BaseException, ddp_timeout: Optional[int] = None) -> Optional[str]:
    """What to tell the user when `error` says the other processes of a distributed run died or stopped answering
    (a gloo or NCCL error, a torch.distributed error), or None for any other error."""
    text = str(error)
    markers = ('gloo', 'NCCL', 'Connection reset by peer', 'Connection closed by peer', 'Timed out waiting',
               'ProcessGroup')
    if not isinstance(error, torch.distributed.DistError) and not (
            isinstance(error, RuntimeError) and any(m in text for m in markers)):
        return None
    rank, world = os.environ.get('RANK', '?'), os.environ.get('WORLD_SIZE', '?')
    waited = f'--ddp-timeout {ddp_timeout} s' if ddp_timeout else '--ddp-timeout seconds, 1800 by default'
    waited = f' (a process waits for the others at most {waited})'
    return (f'process {rank} of {world} lost contact with the other processes{waited}: another process probably '
            f'died or hung; see its log. Nothing written is lost: rerun the same command with --resume auto to '
            f'continue from the newest complete checkpoint (accelerate launch --max_restarts N does it by itself). '
            f'[{type(error).__name__}: {text.splitlines()[0][:300] if text else ""}]')


def resume_or_start(run: TrainRun) -> None:
    """Restore `run.resume_from` (and drop the metrics of the epochs it will repeat), or start afresh (removing an
    earlier run's checkpoints in the output folder); then write config.json, start the trackers, say what runs."""
    cfg, accelerator, output_dir = run.cfg, run.accelerator, run.output_dir
    if run.resume_from is not None:
        state = load_checkpoint(accelerator, run.resume_from, ema=run.ema)
        run.start_epoch, run.skip_batches, run.best = state['epoch'], state['batch'], state['best']
        run.step.load_state_dict(state['step'])
        accelerator.print(f'Resumed from {run.resume_from}: epoch {run.start_epoch + 1}, batch {run.skip_batches}')
        if accelerator.is_main_process:
            truncate_metrics(output_dir, run.start_epoch)
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
    precision = 'fp32' if accelerator.mixed_precision == 'no' else accelerator.mixed_precision
    accelerator.print(
        f'Training {cfg.model} on {cfg.dataset} ({len(run.splits["train"])} train / '
        f'{len(run.splits["validation"])} validation images, {run.splits.split_names["validation"]}) for '
        f'{cfg.epochs} epochs on {accelerator.num_processes} x {accelerator.device}, precision {precision}, '
        f'channels_last {run.channels_last}, global batch {cfg.batch_size}; per process: threads '
        f'{torch.get_num_threads()}, data workers {cfg.num_workers}'
        f'{", small-map conv gradients as matmuls" if run.step.small_map_convs else ""}')
    if cfg.va_head:
        counts = {role: count_without_va(split) for role, split in run.splits.items()}
        accelerator.print('Valence/arousal head on, CCC loss weight {}; images without valence/arousal (left out of '
                          'the CCC loss and metrics): {}'.format(cfg.lambda_va, ', '.join(
                              f'{role} {n}/{len(run.splits[role])}' for role, n in counts.items())))


def record_epoch(run: TrainRun, epoch: int, train_metrics: dict[str, float], val_metrics: dict[str, Any]) -> bool:
    """Append the epoch to metrics.jsonl, export best/ (and its confusion matrix) when `cfg.select_metric`
    improved, print the epoch's line and log to the trackers. Returns whether the epoch is the best so far."""
    cfg, accelerator, splits = run.cfg, run.accelerator, run.splits
    record = {
        'epoch': epoch + 1, 'step': run.step.optimizer_steps, 'lr': train_metrics['lr'],
        **{f'train_{k}': v for k, v in train_metrics.items() if k != 'lr'},
        'validation': {k: v for k, v in val_metrics.items() if k != 'confusion_matrix'},
    }
    value = val_metrics.get(cfg.select_metric)
    improved = value is not None and value > run.best['value']  # va_ccc is None without any V/A target
    if improved:
        run.best = {'epoch': epoch + 1, 'value': value}
    if accelerator.is_main_process:
        append_metrics(run.output_dir, record)
        if improved:
            write_confusion_matrix(run.output_dir, val_metrics, splits.label_names,
                                   f'{cfg.dataset} {splits.split_names["validation"]}, epoch {epoch + 1}')
            export_best(run.eval_model, run.output_dir, cfg, {'validation': val_metrics}, splits.split_names,
                        splits.label_names, run.data_config, epoch + 1)
    losses = {k: train_metrics[k] for k in LOSS_NAMES if k != 'va' or cfg.va_head}
    va = (f', valence CCC {val_metrics["valence_ccc"]:.4f}, arousal CCC {val_metrics["arousal_ccc"]:.4f}'
          if val_metrics.get('va_ccc') is not None else '')
    accelerator.print(
        f'epoch {epoch + 1}: loss {losses["loss"]:.4f} (ce {losses["ce"]:.4f}, affinity {losses["affinity"]:.4f}, '
        f'partition {losses["partition"]:.4f}' + (f', va {losses["va"]:.4f}' if 'va' in losses else '')
        + f'), validation accuracy {val_metrics["accuracy"]:.4f}, '
        f'mean class accuracy {val_metrics["mean_class_accuracy"]:.4f}{va}' + (' (best)' if improved else ''))
    if cfg.report_to:
        logged = ('accuracy', 'mean_class_accuracy', 'macro_f1', 'ece', 'nll', 'valence_ccc', 'arousal_ccc')
        accelerator.log({**{f'train/{k}': v for k, v in losses.items()}, 'lr': train_metrics['lr'],
                         **{f'validation/{k}': val_metrics[k] for k in logged if val_metrics.get(k) is not None}},
                        step=epoch + 1)
    return improved


def finish_run(run: TrainRun) -> Optional[dict[str, dict[str, Any]]]:
    """Check that every process ended with the same weights, evaluate the selected weights (best/) on validation
    and test, calibrate them (`cfg.calibrate`: a temperature fitted on validation, never on test, stored in
    best/config.json; ECE and NLL before and after it in results.json, the card and the reliability diagrams, as
    each epoch's metrics.jsonl record has them for its own validation fit), measure the accuracy per group where
    the evaluated split has group columns (RAF-DB's gender, race, age), rewrite best/'s card with those numbers,
    write results.json, print where the model went; end the trackers. Returns the metrics per role, or None when
    no epoch completed."""
    accelerator, cfg, output_dir, splits = run.accelerator, run.cfg, run.output_dir, run.splits
    checksums = replica_checksums(accelerator, run.module)
    if any(len(set(values)) > 1 for values in checksums.values()):
        raise RuntimeError(f'the processes ended with different weights: {checksums}')
    best_dir = output_dir / 'best'
    accelerator.wait_for_everyone()
    if run.best['epoch'] is None or not (best_dir / 'model.safetensors').is_file():
        accelerator.print('No epoch completed: nothing exported.')
        accelerator.end_training()
        return None
    model = load_pretrained(f'local-dir:{best_dir}').to(accelerator.device)
    if run.channels_last:
        model.to(memory_format=torch.channels_last)
    outputs = {role: predict(accelerator, model, loader, run.normalize, run.channels_last)
               for role, loader in run.eval_loaders.items()}
    results = {role: compute_metrics(out, cfg.num_classes) for role, out in outputs.items()}
    calibration = calibrate_outputs(outputs, splits.split_names) if cfg.calibrate else None
    report_role = 'test' if 'test' in results else 'validation'
    groups = measure_groups(outputs[report_role], splits[report_role], cfg.num_classes)
    if groups:
        results[report_role]['groups'] = groups
    if accelerator.is_main_process:
        if 'test' in results:
            write_confusion_matrix(output_dir, results['test'], splits.label_names,
                                   f'{cfg.dataset} {splits.split_names["test"]}, best epoch {run.best["epoch"]}',
                                   stem='confusion_matrix_test')
        if calibration is not None:
            for role in outputs:
                write_reliability_diagram(output_dir, calibration, role, f'{cfg.dataset} {splits.split_names[role]}')
        export_best(model, output_dir, cfg, results, splits.split_names, splits.label_names, run.data_config,
                    run.best['epoch'], calibration=calibration)
        summary = {'best_epoch': run.best['epoch'], 'split_names': splits.split_names, **best_summary(results),
                   **({'calibration': calibration_summary(calibration)} if calibration else {}),
                   **({'groups': {'split': splits.split_names[report_role], **groups}} if groups else {}),
                   'num_processes': accelerator.num_processes, 'process_checksums': checksums}
        (output_dir / 'results.json').write_text(json.dumps(summary, indent=1))
        print(_final_report(cfg, splits, run.best['epoch'], best_dir, results, calibration))
    accelerator.end_training()
    return results


def _final_report(cfg: TrainConfig, splits: RunSplits, best_epoch: int, best_dir: Path,
                  results: dict[str, dict[str, Any]], calibration: Optional[dict[str, Any]] = None) -> str:
    lines = [f'{role} ({splits.split_names[role]}): ' + ', '.join(
        f'{k} {v:.4f}' for k, v in values.items() if k not in ('num_samples', 'num_va_samples') and v is not None)
        for role, values in best_summary(results).items()]
    if calibration is not None:
        lines.append(f'temperature {calibration["temperature"]:.4f} (fitted on {calibration["fitted_on"]}, stored in '
                     f'{best_dir}/config.json): ' + '; '.join(
                         f'{role} ECE {100 * c["before"]["ece"]:.2f}% -> {100 * c["after"]["ece"]:.2f}%, NLL '
                         f'{c["before"]["nll"]:.4f} -> {c["after"]["nll"]:.4f}'
                         for role, c in calibration['splits'].items()))
    return '\n'.join([
        f'Best epoch {best_epoch} (selected on {splits.split_names["validation"]}):', *lines,
        f'The model is in {best_dir}/ (config.json, model.safetensors, README.md). Load it with:',
        f'    import timm, timm_dan; model = timm.create_model("local-dir:{best_dir}", pretrained=True)',
        f'or evaluate it: python train_scripts/validate.py --model local-dir:{best_dir} --dataset {cfg.dataset}'
        + (f' --data-dir {cfg.data_dir}' if cfg.data_dir else '')
        + (f" --dataset-options '{json.dumps(cfg.dataset_options)}'" if cfg.dataset_options else '')
        + f' --split {cfg.test_split or cfg.val_split}',
    ])
