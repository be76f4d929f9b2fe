"""The run's data: splits (with the hold-out for model selection), seeded augmentation and loaders."""
import random
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from datasets import ClassLabel, Dataset
from torch.utils.data import DataLoader, Sampler
from torchvision.transforms import v2

from ..data import FER_DATASETS, BatchCollate, ClassBalancedSampler, decode_to_arrow, load_fer_dataset, prepare_dataset
from .config import ConfigError, TrainConfig

__all__ = ['RunSplits', 'load_splits', 'SeededAugmentation', 'keep_batch', 'SeededShuffleSampler', 'create_loader',
           'VA_COLUMNS', 'group_columns', 'count_without_va']

VA_COLUMNS = ('valence', 'arousal')
"""The columns a split needs to train and evaluate a valence/arousal head."""


class RunSplits(dict):
    """{'train', 'validation', optionally 'test'} -> Dataset, plus `label_names` and `split_names` (what each
    role was taken from, e.g. 'train (10% stratified hold-out)')."""
    label_names: list[str]
    split_names: dict[str, str]


def load_splits(cfg: TrainConfig) -> RunSplits:
    """Load `cfg.dataset` and pick the training, model-selection and test splits; check classes and paths first.
    With `cfg.cache_decoded`, the splits come with their images decoded into Arrow (`decode_to_arrow`, cached)."""
    if cfg.dataset not in FER_DATASETS:
        raise ConfigError(f'unknown dataset {cfg.dataset!r}; choose one of {", ".join(sorted(FER_DATASETS))}')
    if cfg.dataset != 'synthetic':
        if not cfg.data_dir:
            raise ConfigError(f'dataset {cfg.dataset!r} needs --data-dir (the folder unpacked as distributed)')
        if not Path(cfg.data_dir).is_dir():
            raise FileNotFoundError(f'--data-dir {cfg.data_dir} does not exist or is not a folder')
    data = load_fer_dataset(cfg.dataset, cfg.data_dir, **cfg.dataset_options)
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
    if cfg.cache_decoded:
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
