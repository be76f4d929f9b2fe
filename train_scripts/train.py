"""Train DAN with Accelerate: the paper's recipes, on one CPU or many GPUs, resumable and measured.

    accelerate launch train_scripts/train.py          # the synthetic demo (train_scripts/configs/synthetic.yaml)
    accelerate launch train_scripts/train.py --config train_scripts/configs/rafdb.yaml \\
        --data-dir /data/RAF-DB/basic --output-dir runs/rafdb [--epochs 2 --batch-size 64 --seed 1 ...]
    accelerate launch train_scripts/train.py --output-dir runs/rafdb --config ... --resume
    accelerate launch --multi_gpu --num_processes 8 --max_restarts 3 train_scripts/train.py ... --resume auto

Without --config, train_scripts/configs/synthetic.yaml is used. Every config key is also a command-line option
(--help lists them by section); those given override the config file. Writes metrics.jsonl, the best epoch's
confusion matrix, checkpoints/ and best/ (a timm Hub folder) in --output-dir. `--resume auto` continues from the
newest complete checkpoint when there is one (so a run that torch elastic restarts after a process died picks up
where it was), and starts afresh otherwise. A process whose peers died or hang stops after --ddp-timeout seconds.
"""
import sys
from pathlib import Path

from timm_dan.cpu import exit_now
from timm_dan.files import DiskFullError
from timm_dan.training import (
    CheckpointError,
    ConfigError,
    finish_run,
    lost_processes_message,
    parse_config,
    record_epoch,
    resume_or_start,
    setup_run,
    train_one_epoch,
    validate,
)

DEFAULT_CONFIG = Path(__file__).resolve().parent / 'configs' / 'synthetic.yaml'


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == '--config' or a.startswith('--config=') for a in argv):
        argv = ['--config', str(DEFAULT_CONFIG)] + argv
    cfg = parse_config(argv, description=__doc__)

    run = setup_run(cfg)  # every input is checked here, before anything is trained or written
    resume_or_start(run)
    for epoch in range(run.start_epoch, cfg.epochs):
        train_metrics = train_one_epoch(run, epoch)
        val_metrics = validate(run.accelerator, run.eval_model, run.eval_loaders['validation'], run.normalize,
                               cfg.num_classes, channels_last=run.channels_last, calibrate=cfg.calibrate)
        record_epoch(run, epoch, train_metrics, val_metrics)  # metrics.jsonl, best/ when it improved, one line
        run.checkpoint(epoch + 1)
        if run.reached_max_steps:
            break
    results = finish_run(run)  # the selected weights on validation (and test): results.json, best/'s card
    return 0 if results is not None else 1


if __name__ == '__main__':
    try:
        exit_now(main())
    except (ConfigError, FileNotFoundError) as e:  # bad input: a message, not a traceback
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    except (DiskFullError, CheckpointError) as e:  # the previous checkpoint and best/ are intact
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)
    except RuntimeError as e:  # the other processes died or hang: one clear line, not a wall of tracebacks
        message = lost_processes_message(e)
        if message is None:
            raise
        print(f'error: {message}', file=sys.stderr, flush=True)
        sys.exit(3)
