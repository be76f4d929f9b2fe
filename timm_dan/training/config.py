"""Training configuration: one dataclass, filled from a YAML file and then from command-line overrides.

Every key is type-checked, and an unknown key (in the file or on the command line) is an error before anything
starts. Command-line names are the keys with `-` for `_`: `--batch-size 64`, `--deterministic`, `--no-ema`.
"""
import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

__all__ = ['TrainConfig', 'ConfigError', 'load_config', 'parse_config', 'config_to_dict', 'flat_config']


class ConfigError(ValueError):
    """A configuration file or command-line value that cannot be used."""


@dataclass
class TrainConfig:
    """Everything a training run needs; the YAML configs in `train_scripts/configs/` set the paper's recipes."""
    # data
    dataset: str = 'synthetic'  # a `timm_dan.data.FER_DATASETS` name
    data_dir: Optional[str] = None
    dataset_options: dict[str, Any] = field(default_factory=dict)  # extra `load_fer_dataset` options
    train_split: str = 'train'
    val_split: Optional[str] = 'validation'  # model selection; ignored when val_fraction > 0
    val_fraction: float = 0.0  # > 0: hold out this stratified fraction of train for model selection instead
    test_split: Optional[str] = None  # evaluated once, with the selected weights, at the end
    recipe: str = 'rafdb'  # transform recipe: rafdb, affectnet, sfew
    image_size: int = 224
    balanced_sampler: bool = False  # class-balanced sampling with replacement (AffectNet)
    num_workers: int = 2
    cache_decoded: bool = False  # `decode_to_arrow` the splits once (H*W*3 bytes of disk per image); docs/data.md
    # model
    model: str = 'dan_resnet18'  # timm name, `name.tag`, `local-dir:DIR` or `hf-hub:ID`
    pretrained: bool = False  # load the full DAN weights of `model` (fine-tuning)
    backbone_pretrained: Optional[str] = None  # 'timm' (ImageNet weights) or a local trunk file (MS-Celeb-1M)
    num_classes: int = 7
    num_heads: int = 4
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    # loss
    lambda_affinity: float = 1.0
    lambda_partition: float = 1.0
    label_smoothing: float = 0.0
    # optimisation
    epochs: int = 40
    batch_size: int = 256  # global: summed over processes and accumulation steps
    grad_accum_steps: int = 1
    optimizer: str = 'sgd'  # sgd, adam, adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4  # applies to the affinity centres too, as in the paper's code
    scheduler: str = 'step'  # step (StepLR), exponential, cosine, constant (per epoch); onecycle (per step)
    step_size: int = 10
    gamma: float = 0.1
    clip_grad: Optional[float] = None  # max gradient norm
    ema: bool = False
    ema_decay: float = 0.9998
    # speed and precision
    precision: str = 'auto'  # auto, fp32, bf16, fp16
    channels_last: Optional[bool] = None  # None: on (faster on CPUs with oneDNN and on GPUs)
    compile: bool = False
    # run
    seed: int = 42
    deterministic: bool = False
    output_dir: Optional[str] = None  # default runs/<dataset>
    select_metric: str = 'accuracy'
    checkpoint_steps: int = 0  # also save every N optimizer steps (0: at the end of each epoch only)
    keep_checkpoints: int = 2
    resume: Optional[str] = None  # 'latest' or a checkpoint folder
    skip_nonfinite: bool = False
    report_to: Optional[str] = None  # tensorboard, wandb, ... or all
    log_every: int = 10
    max_train_steps: int = 0  # stop after N optimizer steps (0: run all epochs); for smoke tests
    source: str = ''  # where the recipe comes from (documentation only)
    target: str = ''  # the accuracy this recipe targets (documentation only)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)
_CHOICES = {
    'optimizer': ('sgd', 'adam', 'adamw'),
    'scheduler': ('step', 'exponential', 'cosine', 'constant', 'onecycle'),
    'precision': ('auto', 'fp32', 'bf16', 'fp16'),
    'select_metric': ('accuracy', 'mean_class_accuracy', 'macro_f1'),
}
_CLI_ALIASES = {'precision': ['--mixed-precision']}
_CLI_HELP = {
    'cache_decoded': 'decode every image once into Arrow next to the split (datasets cache), then load raw pixels: '
                     'costs H*W*3 bytes of disk per image (RAF-DB aligned: 460 MB; AffectNet at native size: '
                     'tens of GB)',
}


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _check_value(key: str, value: Any, where: str) -> Any:
    """Return `value` coerced to the type of `key` (int -> float only), or raise a ConfigError naming `where`."""
    hint, optional = _unwrap_optional(_HINTS[key])
    if value is None:
        if optional:
            return None
        raise ConfigError(f'{where}: `{key}` cannot be empty (expected {hint.__name__})')
    base = typing.get_origin(hint) or hint
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, bool) or not isinstance(value, base):
        name = getattr(base, '__name__', str(base))
        raise ConfigError(f'{where}: `{key}` expects {name}{" or null" if optional else ""}, got {value!r}')
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(f'{where}: `{key}` must be one of {", ".join(_CHOICES[key])}, got {value!r}')
    return value


def load_config(path: Optional[str] = None, overrides: Optional[dict[str, Any]] = None) -> TrainConfig:
    """A `TrainConfig` from a YAML file (optional) and a dict of overrides, every key checked."""
    values: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f'Config file {file} does not exist')
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f'{file} is not valid YAML: {e}') from e
        if not isinstance(loaded, dict):
            raise ConfigError(f'{file}: expected a mapping of config keys, got {type(loaded).__name__}')
        for key, value in loaded.items():
            if key not in _FIELDS:
                raise ConfigError(f'{file}: unknown config key `{key}`; known keys: {", ".join(_FIELDS)}')
            values[key] = _check_value(key, value, str(file))
    for key, value in (overrides or {}).items():
        if key not in _FIELDS:
            raise ConfigError(f'unknown config key `{key}`')
        values[key] = _check_value(key, value, 'command line')
    return TrainConfig(**values)


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ('1', 'true', 'yes', 'on'):
        return True
    if lowered in ('0', 'false', 'no', 'off'):
        return False
    raise argparse.ArgumentTypeError(f'expected true/false, got {text!r}')


def _parse_optional(kind):
    def parse(text: str):
        return None if text.lower() in ('none', 'null') else kind(text)
    parse.__name__ = kind.__name__
    return parse


def _parse_mapping(text: str) -> dict[str, Any]:
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f'expected a mapping such as "{{num_samples: 512}}", got {text!r}')
    return value


def build_parser(description: str = '') -> argparse.ArgumentParser:
    """An argparse parser with one option per config key (defaults suppressed: only given keys override)."""
    parser = argparse.ArgumentParser(
        description=description, allow_abbrev=False, argument_default=argparse.SUPPRESS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--config', help='YAML file of config keys (see train_scripts/configs/)')
    defaults = TrainConfig()
    for name, hint in _HINTS.items():
        flag = '--' + name.replace('_', '-')
        kind, optional = _unwrap_optional(hint)
        kind = typing.get_origin(kind) or kind
        help_text = f'{_CLI_HELP[name]}; ' if name in _CLI_HELP else ''
        help_text += f'TrainConfig default: {getattr(defaults, name)!r}'
        if name == 'resume':
            parser.add_argument(flag, nargs='?', const='latest', metavar='PATH',
                                help='continue from the latest checkpoint in output-dir/checkpoints, or from PATH')
        elif kind is bool and not optional:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif kind is dict:
            parser.add_argument(flag, type=_parse_mapping, metavar='YAML', help=help_text)
        else:
            parse = _parse_bool if kind is bool else kind
            aliases = _CLI_ALIASES.get(name, [])
            parser.add_argument(flag, *aliases, dest=name, type=_parse_optional(parse) if optional else parse,
                                metavar=kind.__name__.upper(), help=help_text)
    return parser


def parse_config(argv: Optional[Sequence[str]] = None, description: str = '') -> TrainConfig:
    """Parse `--config FILE` plus `--key value` overrides into a checked `TrainConfig` (exit 2 on bad input)."""
    parser = build_parser(description)
    args = vars(parser.parse_args(argv))
    config_path = args.pop('config', None)
    try:
        return load_config(config_path, args)
    except ConfigError as e:
        parser.error(str(e))


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def flat_config(cfg: TrainConfig) -> dict[str, Any]:
    """Scalars only (trackers such as TensorBoard's hparams take no dicts or None)."""
    out: dict[str, Any] = {}
    for key, value in config_to_dict(cfg).items():
        if isinstance(value, dict):
            out.update({f'{key}.{k}': v for k, v in value.items() if isinstance(v, (int, float, str, bool))})
        elif value is not None:
            out[key] = value
    return out
