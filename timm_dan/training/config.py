"""Training configuration: one dataclass, filled from a YAML file and then from command-line overrides.

Every key is type-checked, and an unknown key (in the file or on the command line) is an error before anything
starts. Command-line names are the keys with `-` for `_`: `--batch-size 64`, `--deterministic`, `--no-ema`. Each
field belongs to one of `SECTIONS`, and `--help` lists the options section by section.
"""
import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..precision import PRECISIONS

__all__ = [
    'TrainConfig', 'ConfigError', 'SECTIONS', 'DEVICE_DATA', 'load_config', 'parse_config', 'build_parser',
    'config_to_dict', 'flat_config',
]

SECTIONS = ('data', 'model', 'loss', 'optimisation', 'speed and precision', 'run')
DEVICE_DATA = ('auto', 'on', 'off')
"""`device_data` choices: where the batches are decoded and augmented (see `training.data.load_device_splits`)."""


class ConfigError(ValueError):
    """A configuration file or command-line value that cannot be used."""


def _section(name: str) -> Callable[..., Any]:
    """The field maker of one section: `option(default, help, choices=None)`, recorded in the field's metadata."""
    def option(default: Any, help: str = '', choices: Optional[Sequence[str]] = None) -> Any:
        metadata = {'section': name, 'help': help, 'choices': choices}
        if isinstance(default, dict):
            return field(default_factory=default.copy, metadata=metadata)
        return field(default=default, metadata=metadata)

    return option


_data, _model, _loss = _section('data'), _section('model'), _section('loss')
_optimisation, _speed, _run = _section('optimisation'), _section('speed and precision'), _section('run')


@dataclass
class TrainConfig:
    """Everything a training run needs; the YAML configs in `train_scripts/configs/` set the paper's recipes."""
    dataset: str = _data('synthetic', 'a timm_dan.data.FER_DATASETS name')
    data_dir: Optional[str] = _data(None, 'the data set\'s folder, unpacked as distributed')
    dataset_options: dict[str, Any] = _data({}, 'extra load_fer_dataset options, e.g. "{num_classes: 8}"')
    train_split: str = _data('train')
    val_split: Optional[str] = _data('validation', 'model selection; ignored when val_fraction > 0')
    val_fraction: float = _data(0.0, '> 0: hold out this stratified fraction of train for model selection instead')
    test_split: Optional[str] = _data(None, 'evaluated once, with the selected weights, at the end')
    recipe: str = _data('rafdb', 'transform recipe: rafdb, affectnet, sfew')
    image_size: int = _data(224)
    balanced_sampler: bool = _data(False, 'class-balanced sampling with replacement (AffectNet)')
    num_workers: int = _data(2, 'DataLoader worker processes')
    cache_decoded: bool = _data(
        False, 'decode every image once into Arrow next to the split (datasets cache), then load raw pixels: '
        'costs H*W*3 bytes of disk per image (RAF-DB aligned: 460 MB; AffectNet at native size: tens of GB)')
    device_data: str = _data(
        'auto', 'the decoded images on the training device, augmented there in batches: auto (on a CUDA device '
        'when they fit in half its free memory; decodes them into the --cache-decoded cache first), on (always, '
        'also on a CPU; streaming from pinned host memory when they do not fit), off (DataLoader workers)',
        choices=DEVICE_DATA)
    model: str = _model('dan_resnet18', 'timm name, name.tag, local-dir:DIR or hf-hub:ID')
    pretrained: bool = _model(False, 'start from the full DAN weights of model (fine-tuning), e.g. a local-dir: '
                              'or hf-hub: folder')
    backbone_pretrained: Optional[str] = _model(None, "'timm' (ImageNet weights) or a local trunk file "
                                                '(MS-Celeb-1M)')
    num_classes: int = _model(7)
    num_heads: int = _model(4, 'attention heads')
    drop_rate: float = _model(0.0)
    drop_path_rate: float = _model(0.0)
    va_head: bool = _model(False, 'add a valence/arousal head (two outputs in [-1, 1] from the fused head features), '
                           'trained on the data set\'s valence and arousal with the CCC loss')
    lambda_affinity: float = _loss(1.0, 'weight of the affinity loss')
    lambda_partition: float = _loss(1.0, 'weight of the partition loss')
    label_smoothing: float = _loss(0.0)
    lambda_va: float = _loss(1.0, 'weight of the valence/arousal loss: sum over valence and arousal of 1 - CCC '
                             '(with va_head)')
    epochs: int = _optimisation(40)
    batch_size: int = _optimisation(256, 'global: summed over processes and accumulation steps')
    grad_accum_steps: int = _optimisation(1)
    optimizer: str = _optimisation('sgd', choices=('sgd', 'adam', 'adamw'))
    lr: float = _optimisation(0.1)
    momentum: float = _optimisation(0.9, 'sgd only')
    weight_decay: float = _optimisation(1e-4, 'applies to the affinity centres too, as in the paper\'s code')
    scheduler: str = _optimisation('step', 'step (StepLR), exponential, cosine, constant: per epoch; onecycle: per '
                                   'step', choices=('step', 'exponential', 'cosine', 'constant', 'onecycle'))
    step_size: int = _optimisation(10, 'StepLR\'s epochs per step')
    gamma: float = _optimisation(0.1, 'StepLR\'s and ExponentialLR\'s factor')
    clip_grad: Optional[float] = _optimisation(None, 'max gradient norm')
    ema: bool = _optimisation(False, 'evaluate and export an EMA of the weights')
    ema_decay: float = _optimisation(0.9998)
    precision: str = _speed('auto', 'auto: bf16 where the device computes it natively, else fp32',
                            choices=PRECISIONS)
    channels_last: Optional[bool] = _speed(None, 'None: on (faster on CPUs with oneDNN and on GPUs)')
    compile: bool = _speed(False, 'torch.compile the model and the loss')
    small_map_convs: Optional[bool] = _speed(None, 'weight gradients of convs with small output maps as one matmul '
                                             '(timm_dan.models.small_map_convs); None: on AVX2 CPUs, where oneDNN\'s '
                                             'are slow (x1.5 for the 64 px demo step)')
    threads: Optional[int] = _speed(None, 'torch compute threads per process; None: the cores this process may use '
                                    '(CPU affinity, cgroup quota) divided among the local processes, whatever '
                                    'OMP_NUM_THREADS says (accelerate launch sets it to 1 without a GPU)')
    keep_freed_memory: bool = _speed(True, 'on CPUs, keep freed buffers in the process instead of returning them to '
                                     'the kernel and faulting them in again every step (glibc mallopt; '
                                     'timm_dan.cpu.keep_freed_memory)')
    seed: int = _run(42)
    deterministic: bool = _run(False, 'deterministic kernels, and dropout reseeded per step (bit-identical resume)')
    output_dir: Optional[str] = _run(None, 'the run\'s folder (None: runs/<dataset>)')
    select_metric: str = _run('accuracy', 'the validation metric that selects the best epoch (va_ccc: the mean CCC '
                              'of valence and arousal, with va_head)',
                              choices=('accuracy', 'mean_class_accuracy', 'macro_f1', 'va_ccc'))
    calibrate: bool = _run(True, 'after training, fit a softmax temperature on the validation split (NLL, L-BFGS; '
                           'never on test), store it in best/config.json, report ECE and NLL before and after')
    checkpoint_steps: int = _run(0, 'also save every N optimizer steps (0: at the end of each epoch only)')
    keep_checkpoints: int = _run(2)
    resume: Optional[str] = _run(None, 'continue from the newest complete checkpoint in output-dir/checkpoints '
                                 '(--resume; an error if there is none), from PATH, or with `auto` from the newest '
                                 'one if there is one and else start afresh (for restarts by torch elastic)')
    ddp_timeout: int = _run(1800, 'seconds a process waits for the others (the process group\'s timeout) before it '
                            'stops with an error instead of hanging; raise it if the main process needs longer, '
                            'e.g. to build a large data set\'s cache on the first run')
    skip_nonfinite: bool = _run(False, 'skip optimizer steps with non-finite gradients instead of stopping')
    report_to: Optional[str] = _run(None, 'tensorboard, wandb, ... or all')
    log_every: int = _run(10, 'progress bar refresh, in micro-batches')
    max_train_steps: int = _run(0, 'stop after N optimizer steps (0: run all epochs); for smoke tests')
    source: str = _run('', 'where the recipe comes from (documentation only)')
    target: str = _run('', 'the accuracy this recipe targets (documentation only)')


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)
_CLI_ALIASES = {'precision': ['--mixed-precision']}


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
    choices = _FIELDS[key].metadata['choices']
    if choices and value not in choices:
        raise ConfigError(f'{where}: `{key}` must be one of {", ".join(choices)}, got {value!r}')
    return value


def load_config(path: Optional[str] = None, overrides: Optional[dict[str, Any]] = None) -> TrainConfig:
    """A `TrainConfig` from a YAML file (optional) and a dict of overrides, every key checked."""
    values: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f'Config file {file} does not exist')
        data = file.read_bytes()
        try:
            text = data.decode('utf-8')
        except UnicodeDecodeError as e:
            line = data.count(b'\n', 0, e.start) + 1
            raise ConfigError(f'{file}:{line}: not UTF-8 text ({e.reason})') from None
        try:
            loaded = yaml.safe_load(text) or {}
        except (yaml.YAMLError, RecursionError, ValueError) as e:  # ValueError: an integer of > 4300 digits
            raise ConfigError(f'{file} is not valid YAML: {str(e)[:500]}') from None
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
    """An argparse parser with one option per config key, in one group per section (defaults suppressed: only the
    keys given override)."""
    parser = argparse.ArgumentParser(
        description=description, allow_abbrev=False, argument_default=argparse.SUPPRESS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='The defaults shown are TrainConfig\'s: a --config file replaces them, the options given replace both.',
    )
    parser.add_argument('--config', help='YAML file of config keys (see train_scripts/configs/)')
    groups = {section: parser.add_argument_group(section) for section in SECTIONS}
    defaults = TrainConfig()
    for name, spec in _FIELDS.items():
        _add_option(groups[spec.metadata['section']], name, spec.metadata, getattr(defaults, name))
    return parser


def _add_option(group, name: str, metadata: dict[str, Any], default: Any) -> None:
    flag = '--' + name.replace('_', '-')
    kind, optional = _unwrap_optional(_HINTS[name])
    kind = typing.get_origin(kind) or kind
    help_text = '; '.join(filter(None, [metadata['help'], f'default: {default!r}']))
    if name == 'resume':
        group.add_argument(flag, nargs='?', const='latest', metavar='PATH', help=metadata['help'])
    elif kind is bool and not optional:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
    elif kind is dict:
        group.add_argument(flag, type=_parse_mapping, metavar='YAML', help=help_text)
    else:
        parse = _parse_bool if kind is bool else kind
        choices = metadata['choices']
        metavar = '{' + ','.join(choices) + '}' if choices else kind.__name__.upper()
        group.add_argument(flag, *_CLI_ALIASES.get(name, []), dest=name, metavar=metavar,
                           type=_parse_optional(parse) if optional else parse, help=help_text)


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
