"""`load_fer_dataset`: any FER data set, in its official layout, as a `datasets.DatasetDict` in canonical labels."""
import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Union

from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

from . import synthetic
from .labels import canonical_names
from .registry import FER_DATASETS

__all__ = ['load_fer_dataset']

SYNTHETIC_DEFAULTS = dict(num_samples=4000, num_validation_samples=None, image_size=64, num_classes=8, seed=0)


def _code_hash(*modules) -> str:
    return hashlib.sha256(b''.join(Path(m.__file__).read_bytes() for m in modules)).hexdigest()[:16]


def _load_synthetic(num_samples: int, num_validation_samples: Optional[int], image_size: int, num_classes: int,
                    seed: int, cache_dir: Optional[str] = None) -> DatasetDict:
    features = Features({
        'image': Image(),
        'label': ClassLabel(names=list(canonical_names(num_classes))),
        'file': Value('string'),
    })
    splits = {}
    for index, (split, n) in enumerate(synthetic.synthetic_sizes(num_samples, num_validation_samples).items()):
        kwargs = dict(num_samples=n, image_size=image_size, num_classes=num_classes, seed=seed, split_index=index)
        # from_generator fingerprints the function and its arguments only: add the drawing code itself
        key = json.dumps({**kwargs, 'code': _code_hash(synthetic)}, sort_keys=True)
        splits[split] = Dataset.from_generator(
            synthetic.generate_examples, features=features, gen_kwargs=kwargs, cache_dir=cache_dir,
            fingerprint=hashlib.sha256(key.encode()).hexdigest()[:32], split=split,
        )
    return DatasetDict(splits)


def load_fer_dataset(name: str, data_dir: Optional[Union[str, Path]] = None, **options: Any) -> DatasetDict:
    """Load a FER data set as a `DatasetDict` whose `label` is a `ClassLabel` in canonical order (`LABELS[:K]`).

    `name` is a key of `FER_DATASETS`; `data_dir` is the data set's root, unpacked as distributed
    (`FER_DATASETS[name].layout`). Options:
        synthetic: num_samples (train size, 4000), num_validation_samples (num_samples // 4), image_size (64),
                   num_classes (8), seed (0)
        all:       cache_dir (the `datasets` cache by default)
    """
    if name not in FER_DATASETS:
        raise ValueError(f'unknown FER data set {name!r}; choose one of {sorted(FER_DATASETS)}')
    if name == 'synthetic':
        unknown = set(options) - set(SYNTHETIC_DEFAULTS) - {'cache_dir'}
        if unknown:
            raise TypeError(f'unknown options for synthetic: {sorted(unknown)}')
        return _load_synthetic(**{**SYNTHETIC_DEFAULTS, **options})
    raise NotImplementedError(name)
