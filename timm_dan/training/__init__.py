"""Training DAN with Accelerate: config, factories, the train step, evaluation, checkpoints and reports.

`train_scripts/train.py` is a thin loop over these pieces; `benchmarks/` reuses `TrainStep` so that it measures
exactly what training runs. The precision vocabulary is `timm_dan.precision`'s.
"""
from ..precision import accelerate_mixed_precision
from ._deprecated import deprecated_names
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
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

__all__ = [
    'TrainConfig', 'ConfigError', 'load_config', 'parse_config', 'config_to_dict', 'flat_config',
    'create_train_model', 'create_loss', 'create_optimizer', 'create_scheduler', 'split_batch_size',
    'DANTrainModule', 'TrainStep', 'NonFiniteLossError', 'predict_loader', 'replica_checksums',
    'resolve_channels_last', 'save_checkpoint', 'load_checkpoint', 'latest_checkpoint',
]

__getattr__ = deprecated_names(__name__, {
    'resolve_precision': ('timm_dan.precision.accelerate_mixed_precision', accelerate_mixed_precision),
    'create_model': ('timm_dan.training.create_train_model', create_train_model),
})
