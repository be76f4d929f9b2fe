"""Training DAN with Accelerate: config, factories, the train step, evaluation, checkpoints and reports.

`train_scripts/train.py` is a thin loop over these pieces; `benchmarks/` reuses `TrainStep` and
`resolve_precision` so that it measures exactly what training runs.
"""
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, config_to_dict, flat_config, load_config, parse_config
from .engine import (
    DANTrainModule,
    NonFiniteLossError,
    TrainStep,
    predict_loader,
    replica_checksums,
    resolve_channels_last,
    resolve_precision,
)
from .factory import create_loss, create_model, create_optimizer, create_scheduler, split_batch_size

__all__ = [
    'TrainConfig', 'ConfigError', 'load_config', 'parse_config', 'config_to_dict', 'flat_config',
    'create_model', 'create_loss', 'create_optimizer', 'create_scheduler', 'split_batch_size',
    'DANTrainModule', 'TrainStep', 'NonFiniteLossError', 'predict_loader', 'replica_checksums', 'resolve_precision',
    'resolve_channels_last', 'save_checkpoint', 'load_checkpoint', 'latest_checkpoint',
]
