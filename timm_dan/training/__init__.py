"""Training DAN with Accelerate: config, factories, the train step, the epoch loop, checkpoints and reports.

`train_scripts/train.py` is a short sequence of these calls (`setup_run`, `resume_or_start`, `train_one_epoch`,
`validate`, `record_epoch`, `finish_run`); `train_scripts/validate.py` shares `validate`; `benchmarks/` reuses
`TrainStep` so that it measures exactly what training runs. The precision vocabulary is `timm_dan.precision`'s.
"""
from .._deprecation import moved_names
from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, config_to_dict, flat_config, load_config, parse_config
from .engine import (
    DANTrainModule,
    NonFiniteLossError,
    TrainStep,
    predict_loader,
    replica_checksums,
    resolve_channels_last,
)
from .factory import create_loss, create_optimizer, create_scheduler, create_train_model, split_batch_size
from .loop import compute_metrics, predict, train_one_epoch, validate
from .run import TrainRun, finish_run, lost_processes_message, record_epoch, resume_or_start, setup_run

__all__ = [
    'TrainConfig', 'ConfigError', 'load_config', 'parse_config', 'config_to_dict', 'flat_config',
    'create_train_model', 'create_loss', 'create_optimizer', 'create_scheduler', 'split_batch_size',
    'DANTrainModule', 'TrainStep', 'NonFiniteLossError', 'predict_loader', 'replica_checksums',
    'resolve_channels_last', 'save_checkpoint', 'load_checkpoint', 'latest_checkpoint', 'CheckpointError',
    'TrainRun', 'setup_run', 'resume_or_start', 'train_one_epoch', 'validate', 'predict', 'compute_metrics',
    'record_epoch', 'finish_run', 'lost_processes_message',
]

__getattr__ = moved_names(__name__, {
    'resolve_precision': 'timm_dan.precision:accelerate_mixed_precision',
    'create_model': 'timm_dan.training:create_train_model',
})
