"""The run's data: splits (with the hold-out for model selection), seeded augmentation, and the loaders of either
pipeline: DataLoader workers (`create_loader`) or the decoded images on the device (`create_device_loader`), chosen
by `device_data` (`load_device_splits`)."""
import random
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

import numpy as np
import torch
from datasets import ClassLabel, Dataset
from torch.utils.data import DataLoader, Sampler
from torchvision.transforms import v2

from ..data import (
    FER_DATASETS,
    BatchCollate,
    ClassBalancedSampler,
    DeviceNormalize,
    decode_to_arrow,
    load_fer_dataset,
    prepare_dataset,
)
from ..data.device import (
    DeviceBatches,
    DeviceSplit,
    EnumeratedSampler,
    format_bytes,
    memory_budget,
    split_nbytes,
    storage_size,
)
from ..data.recipes import input_hw, interpolation_mode
from .config import DEVICE_DATA, ConfigError, TrainConfig

__all__ = ['RunSplits', 'load_splits', 'SeededAugmentation', 'keep_batch', 'SeededShuffleSampler', 'create_loader',
           'wants_device_data', 'load_device_splits', 'create_device_loader', 'RunLoaders', 'create_run_loaders',
           'create_eval_loader', 'VA_COLUMNS', 'group_columns', 'count_without_va']

VA_COLUMNS = ('valence', 'arousal')
"""The columns a split needs to train and evaluate a valence/arousal head."""


class RunSplits(dict):
    """{'train', 'validation', optionally 'test'} -> Dataset, plus `label_names` and `split_names` (what each
    role was taken from, e.g. 'train (10% stratified hold-out)')."""
    label_names: list[str]
    split_names: dict[str, str]


def load_splits(cfg: TrainConfig, device: Optional[Union[str, torch.device]] = None) -> RunSplits:
    """Load `cfg.dataset` and pick the training, model-selection and test splits; check classes and paths first.
    With `cfg.cache_decoded`, or when `cfg.device_data` may put them on `device`, the splits come with their images
    decoded into Arrow (`decode_to_arrow`, cached)."""
    if cfg.dataset not in FER_DATASETS:
        raise ConfigError(f'unknown dataset {cfg.dataset!r}; choose one of {", ".join(sorted(FER_DATASETS))}')
    if cfg.dataset != 'synthetic':
        if not cfg.data_dir:
            raise ConfigError(f'dataset {cfg.dataset!r} needs --data-dir (the folder unpacked as distributed)')
        if not Path(cfg.data_dir).is_dir():
            raise FileNotFoundError(f'--data-dir {cfg.data_dir} does not exist or is not a folder')
    try:
        data = load_fer_dataset(cfg.dataset, cfg.data_dir, **cfg.dataset_options)
    except TypeError as e:  # an option the data set does not take
        raise ConfigError(f'dataset_options {cfg.dataset_options}: {e} (YAML needs a space after each colon: '
                          f'"{{num_samples: 512}}")') from e
    label_names = list(data[next(iter(data))].features['label'].names)
    if len(label_names) != cfg.num_classes:
        raise ConfigError(
            f'num_classes is {cfg.num_classes} but {cfg.dataset} (options {cfg.dataset_options}) has '
            f'{len(label_names)} classes {label_names}; set --num-classes {len(label_names)} or change the data set'
        )
    wanted = [cfg.train_split] + ([cfg.test_split] if cfg.test_split else [])
    if not cfg.val_fraction:
        wanted.append(cfg.val_split)
    missing = [s for s in wanted if s is not None and s not in data]
    if missing or (not cfg.val_fraction and not cfg.val_split):
        raise ConfigError(f'{cfg.dataset} has splits {list(data)}; the config asks for {missing or "no validation"}')

    splits = RunSplits()
    splits.label_names = label_names
    if cfg.val_fraction:
        if not 0 < cfg.val_fraction < 1:
            raise ConfigError(f'val_fraction must be in (0, 1), got {cfg.val_fraction}')
        held = data[cfg.train_split].train_test_split(
            test_size=cfg.val_fraction, stratify_by_column='label', seed=cfg.seed)
        splits['train'], splits['validation'] = held['train'], held['test']
        val_name = f'{cfg.train_split} ({cfg.val_fraction:.0%} stratified hold-out, seed {cfg.seed})'
    else:
        splits['train'], splits['validation'] = data[cfg.train_split], data[cfg.val_split]
        val_name = cfg.val_split
    splits.split_names = {'train': cfg.train_split, 'validation': val_name}
    if cfg.test_split:
        splits['test'] = data[cfg.test_split]
        splits.split_names['test'] = cfg.test_split
    if cfg.va_head:
        for role, split in splits.items():
            if not set(VA_COLUMNS) <= set(split.column_names):
                raise ConfigError(f'va_head needs valence and arousal, but {cfg.dataset} ({splits.split_names[role]}) '
                                  f'has columns {split.column_names}; use a data set with them (affectnet, synthetic)')
    if cfg.cache_decoded or (device is not None and wants_device_data(cfg.device_data, device)):
        for role, split in splits.items():
            splits[role] = decode_to_arrow(split, num_proc=cfg.num_workers if cfg.num_workers > 1 else None)
    return splits


def group_columns(split: Dataset) -> list[str]:
    """The split's `ClassLabel` columns besides `label`: the groups accuracy is reported for (RAF-DB's gender, race
    and age)."""
    return [name for name, feature in split.features.items()
            if name != 'label' and isinstance(feature, ClassLabel)]


def count_without_va(split: Dataset) -> int:
    """Images of a split that have no valence or arousal (AffectNet's -2, read as None)."""
    return sum(v is None or a is None for v, a in zip(split['valence'], split['arousal'], strict=True))


class SeededAugmentation(torch.utils.data.Dataset):
    """Runs the wrapped dataset's random transforms, and then `collate`'s, under RNGs seeded by (seed, epoch, the
    batch's indices).

    The augmentation of a sample then depends neither on the number of workers nor on where a run was resumed,
    and it does not touch the process's own RNG streams. With `collate` (a batch transform such as
    `BatchCollate`), `__getitems__` returns the collated batch: give the DataLoader `collate_fn=keep_batch`.
    The epoch lives in shared memory, so persistent workers see `set_epoch`.
    """

    def __init__(self, dataset: Any, seed: int, collate: Optional[Callable[[list], Any]] = None):
        self.dataset = dataset
        self.seed = seed
        self.collate = collate
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        batch = self.__getitems__([index])
        return batch if self.collate is not None else batch[0]

    def __getitems__(self, indices: Sequence[int]) -> Any:
        key = np.asarray([self.seed, int(self._epoch), *indices], dtype=np.int64).tobytes()
        seed = zlib.crc32(key) | (zlib.adler32(key) << 32)
        py_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            try:
                examples = self.dataset.__getitems__(list(indices))
                return self.collate(examples) if self.collate is not None else examples
            finally:
                random.setstate(py_state)


def keep_batch(batch: Any) -> Any:
    """The DataLoader's `collate_fn` for a dataset whose `__getitems__` already returns whole batches."""
    return batch


class SeededShuffleSampler(Sampler[int]):
    """A permutation drawn from (seed, epoch): identical on every process, so Accelerate shards it cleanly."""

    def __init__(self, num_samples: int, seed: int):
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())


def create_loader(
        dataset: Dataset,
        data_config: dict[str, Any],
        batch_size: int,
        is_training: bool,
        *,
        recipe: Optional[str] = None,
        num_workers: int = 2,
        seed: int = 42,
        balanced_sampler: bool = False,
        columns: Sequence[str] = (),
) -> DataLoader:
    """A DataLoader of uint8 `FERBatch`es: each worker decodes its samples and `BatchCollate` resizes (and in
    training augments with `recipe`, seeded by `SeededAugmentation`) whole batches; pass them through
    `DeviceNormalize` on the device. Training: shuffling seeded by (`seed`, epoch), or class-balanced sampling with
    replacement (`balanced_sampler`), and drop_last. `columns=VA_COLUMNS` adds the batches' valence/arousal targets
    (`FERBatch.valence_arousal`)."""
    prepared = prepare_dataset(dataset, v2.Identity(), columns)
    collate = BatchCollate(data_config, recipe, is_training=is_training)
    workers = dict(num_workers=num_workers, persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())
    if not is_training:
        return DataLoader(prepared, batch_size=batch_size, shuffle=False, collate_fn=collate, **workers)
    if balanced_sampler:
        sampler = ClassBalancedSampler(dataset['label'], seed=seed)
    else:
        sampler = SeededShuffleSampler(len(dataset), seed=seed)
    return DataLoader(
        SeededAugmentation(prepared, seed, collate), batch_size=batch_size, sampler=sampler, drop_last=True,
        collate_fn=keep_batch, **workers,
    )


def wants_device_data(mode: str, device: Union[str, torch.device]) -> bool:
    """Whether `device_data` `mode` may put the data on `device`: 'on' anywhere, 'auto' on a CUDA device."""
    if mode not in DEVICE_DATA:
        raise ConfigError(f'device_data must be one of {", ".join(DEVICE_DATA)}, got {mode!r}')
    return mode == 'on' or (mode == 'auto' and torch.device(device).type == 'cuda')


def load_device_splits(mode: str, splits: Mapping[str, Dataset], data_config: Mapping[str, Any],
                       device: Union[str, torch.device], agree: Optional[Callable[[bool], bool]] = None,
                       memory_limit: Optional[int] = None, columns: Sequence[str] = ()
                       ) -> tuple[Optional[dict[str, DeviceSplit]], str]:
    """The splits on `device` for the device pipeline, or None for the DataLoader pipeline, and a line saying which
    and why.

    'off': None. 'auto': on a CUDA device, when every split fits (at its stored size: `storage_size`) in
    `memory_limit` bytes (default `memory_budget(device)`), else None. 'on': the device pipeline; splits that do not
    fit stream from pinned host memory (with a warning). `agree` turns this process's "fits" into every process's
    (all of them must fit), so that every process takes the same pipeline. The splits must be decoded
    (`load_splits(cfg, device)` decodes them when `wants_device_data`). `columns=VA_COLUMNS` loads the valence/arousal
    targets too (the batches then carry them after the labels, as `create_loader`'s do).
    """
    if set(columns) - set(VA_COLUMNS):
        raise ValueError(f'the device pipeline carries the columns {", ".join(VA_COLUMNS)} besides the labels, not '
                         f'{", ".join(sorted(set(columns) - set(VA_COLUMNS)))}')
    va = bool(columns)
    device = torch.device(device)
    if not wants_device_data(mode, device):
        why = 'device_data off' if mode == 'off' else f'device_data auto: {device} is not a CUDA device'
        return None, f'Data: DataLoader workers decode and augment the batches ({why})'
    sizes = {role: storage_size(split, input_hw(data_config)) for role, split in splits.items()}
    need = sum(split_nbytes(split, sizes[role], va) for role, split in splits.items())
    budget = memory_budget(device) if memory_limit is None else memory_limit
    fits = need <= budget
    if agree is not None:
        fits = agree(fits)
    amount = f'{format_bytes(need)} of the {format_bytes(budget)} the data may take on {device}'
    if not fits and mode == 'auto':
        return None, (f'Data: DataLoader workers decode and augment the batches (device_data auto: the decoded '
                      f'splits need {amount}; --device-data on streams them from host memory instead)')
    if not fits:
        warnings.warn(f'the decoded splits ({format_bytes(need)}) do not fit in the {format_bytes(budget)} the data '
                      f'may take on {device}: streaming each batch from pinned host memory', stacklevel=2)
    interpolation = interpolation_mode(data_config)
    device_splits = {role: DeviceSplit.from_dataset(split, device, sizes[role], resident=fits, name=role,
                                                    interpolation=interpolation, valence_arousal=va)
                     for role, split in splits.items()}
    where = f'resident on {device}' if fits else f'streamed to {device} from pinned host memory'
    stored = ', '.join(f'{role} {len(split)} at {split.size[0]}x{split.size[1]}' for role, split in
                       device_splits.items())
    return device_splits, f'Data: the decoded images {where} ({stored}: {format_bytes(need)}), augmented there'



def create_device_loader(
        split: DeviceSplit,
        data_config: dict[str, Any],
        batch_size: int,
        is_training: bool,
        *,
        recipe: Optional[str] = None,
        seed: int = 42,
        balanced_sampler: bool = False,
) -> DataLoader:
    """A DataLoader of `(pixel_values, labels)` batches (`(pixel_values, labels, valence_arousal)` for a split loaded
    with its valence/arousal targets) made on the split's device by `DeviceBatches` (no workers:
    the work is on the device; use them as they come, without `DeviceNormalize`). Training: the same samplers as
    `create_loader` (shuffling seeded by (`seed`, epoch), or class-balanced with replacement), each draw numbered
    (`EnumeratedSampler`) to seed its augmentation, and drop_last."""
    batches = DeviceBatches(split, data_config, recipe, is_training=is_training, seed=seed)
    if not is_training:
        return DataLoader(batches, batch_size=batch_size, shuffle=False, collate_fn=keep_batch)
    if balanced_sampler:
        sampler = ClassBalancedSampler(split.labels.tolist(), seed=seed)
    else:
        sampler = SeededShuffleSampler(len(split), seed=seed)
    return DataLoader(batches, batch_size=batch_size, sampler=EnumeratedSampler(sampler), drop_last=True,
                      collate_fn=keep_batch)


class RunLoaders(NamedTuple):
    """A run's loaders and what turns their batches into the model's input (`DeviceNormalize` for the DataLoader
    pipeline's uint8 batches; `keep_batch` for the device pipeline's, which are ready), and a line saying which."""
    train: DataLoader
    evaluation: dict[str, DataLoader]
    normalize: Callable[[Any], tuple[torch.Tensor, torch.Tensor]]
    note: str


def create_run_loaders(cfg: TrainConfig, splits: Mapping[str, Dataset], data_config: dict[str, Any], batch_size: int,
                       device: Union[str, torch.device], agree: Optional[Callable[[bool], bool]] = None
                       ) -> RunLoaders:
    """The training loader (`batch_size` per process) and one evaluation loader (twice that) per other split, of the
    pipeline `cfg.device_data` picks on `device` (`load_device_splits`); with `cfg.va_head`, either pipeline's
    batches carry the valence/arousal targets."""
    columns = VA_COLUMNS if cfg.va_head else ()
    device_splits, note = load_device_splits(cfg.device_data, splits, data_config, device, agree, columns=columns)
    roles = [role for role in splits if role != 'train']
    if device_splits is None:
        train = create_loader(splits['train'], data_config, batch_size, is_training=True, recipe=cfg.recipe,
                              num_workers=cfg.num_workers, seed=cfg.seed, balanced_sampler=cfg.balanced_sampler,
                              columns=columns)
        evaluation = {role: create_loader(splits[role], data_config, 2 * batch_size, is_training=False,
                                          num_workers=cfg.num_workers, columns=columns) for role in roles}
        return RunLoaders(train, evaluation, DeviceNormalize(data_config), note)
    train = create_device_loader(device_splits['train'], data_config, batch_size, is_training=True, recipe=cfg.recipe,
                                 seed=cfg.seed, balanced_sampler=cfg.balanced_sampler)
    evaluation = {role: create_device_loader(device_splits[role], data_config, 2 * batch_size, is_training=False)
                  for role in roles}
    return RunLoaders(train, evaluation, keep_batch, note)


def create_eval_loader(dataset: Dataset, data_config: dict[str, Any], batch_size: int, device_data: str,
                       device: Union[str, torch.device], num_workers: int = 2, name: str = 'split',
                       columns: Sequence[str] = ()
                       ) -> tuple[DataLoader, Callable[[Any], tuple[torch.Tensor, torch.Tensor]], str]:
    """One evaluation loader of the pipeline `device_data` picks on `device`, what turns its batches into the
    model's input, and a line saying which (`validate.py`'s; decode the split first where `wants_device_data`);
    `columns=VA_COLUMNS` adds the valence/arousal targets to its batches."""
    device_splits, note = load_device_splits(device_data, {name: dataset}, data_config, device, columns=columns)
    if device_splits is None:
        loader = create_loader(dataset, data_config, batch_size, is_training=False, num_workers=num_workers,
                               columns=columns)
        return loader, DeviceNormalize(data_config), note
    return create_device_loader(device_splits[name], data_config, batch_size, is_training=False), keep_batch, note
