"""`load_fer_dataset`: any FER data set, in its official layout, as a `datasets.DatasetDict` in canonical labels."""
import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Union

from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

from . import builder, labels
from .builder import FERReport, build_dataset, layout_error
from .labels import canonical_names
from .registry import FER_DATASETS
from .sources import affectnet, expw, fer2013, rafdb, sfew

__all__ = ['load_fer_dataset']

# name -> (scanner module, scan function, options with their defaults)
_SOURCES = {
    'rafdb': (rafdb, rafdb.scan, {'aligned': True}),
    'affectnet': (affectnet, affectnet.scan, {'num_classes': 8}),
    'sfew': (sfew, sfew.scan, {}),
    'fer2013': (fer2013, fer2013.scan_fer2013, {}),
    'ferplus': (fer2013, fer2013.scan_ferplus, {}),
    'expw': (expw, expw.scan, {'seed': 0, 'split_fractions': (0.8, 0.1, 0.1)}),
}

SYNTHETIC_DEFAULTS = dict(num_samples=4000, num_validation_samples=None, image_size=64, num_classes=8, seed=0)


def _load_synthetic(num_samples: int, num_validation_samples: Optional[int], image_size: int, num_classes: int,
                    seed: int, cache_dir: Optional[str] = None) -> DatasetDict:
    from . import synthetic  # draws with OpenCV: imported only when needed, so `timm-dan --help` stays light

    features = Features({
        'image': Image(),
        'label': ClassLabel(names=list(canonical_names(num_classes))),
        'file': Value('string'),
    })
    splits = {}
    for index, (split, n) in enumerate(synthetic.synthetic_sizes(num_samples, num_validation_samples).items()):
        kwargs = dict(num_samples=n, image_size=image_size, num_classes=num_classes, seed=seed, split_index=index)
        # from_generator fingerprints the function and its arguments only: add the drawing code itself
        code = hashlib.sha256(Path(synthetic.__file__).read_bytes()).hexdigest()
        key = json.dumps({**kwargs, 'code': code}, sort_keys=True)
        splits[split] = Dataset.from_generator(
            synthetic.generate_examples, features=features, gen_kwargs=kwargs, cache_dir=cache_dir,
            fingerprint=hashlib.sha256(key.encode()).hexdigest()[:32], split=split,
        )
    return DatasetDict(splits)


def load_fer_dataset(name: str, data_dir: Optional[Union[str, Path]] = None, *, on_bad: str = 'error',
                     cache_dir: Optional[str] = None, return_report: bool = False,
                     **options: Any) -> Union[DatasetDict, tuple[DatasetDict, Optional[FERReport]]]:
    """Load a FER data set as a `DatasetDict` whose `label` is a `ClassLabel` in canonical order (`LABELS[:K]`).

    `name` is a key of `FER_DATASETS`; `data_dir` is the data set's root, unpacked as distributed
    (`FER_DATASETS[name].layout`). Columns: `image`, `label`, `source_label` (the native label), `file`, and
    where the source has them `bbox` (x, y, w, h of the cropped face), `landmarks`, `valence`, `arousal`,
    `soft_label` (FERPlus vote distribution), `confidence` (ExpW).
    Options:
        rafdb:     aligned (True; False reads Image/original/)
        affectnet: num_classes (8 or 7; codes 8-10, and contempt for 7, are dropped and counted)
        expw:      seed (0), split_fractions ((0.8, 0.1, 0.1) for train/validation/test, stratified by class)
        synthetic: num_samples (train size, 4000), num_validation_samples (num_samples // 4), image_size (64),
                   num_classes (8), seed (0)
        all:       on_bad ('error': missing or undecodable images raise `BadImagesError` listing them;
                   'skip': they are skipped with a warning), cache_dir (the `datasets` cache by default),
                   return_report (also return the `FERReport`: counts kept/dropped/missing/corrupt per split;
                   None for synthetic)
    """
    if name not in FER_DATASETS:
        raise ValueError(f'unknown FER data set {name!r}; choose one of {sorted(FER_DATASETS)}')
    defaults = SYNTHETIC_DEFAULTS if name == 'synthetic' else _SOURCES[name][2]
    unknown = set(options) - set(defaults)
    if unknown:
        raise TypeError(f'unknown options for {name}: {sorted(unknown)} (valid: {sorted(defaults)})')
    options = {**defaults, **options}
    if on_bad not in ('error', 'skip'):
        raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
    if name == 'synthetic':
        if data_dir is not None:
            raise ValueError('synthetic is generated in memory: it takes no data_dir')
        dataset, report = _load_synthetic(**options, cache_dir=cache_dir), None
    else:
        if data_dir is None:
            raise ValueError(f'{name} needs data_dir, the folder that holds:\n{FER_DATASETS[name].layout}')
        root = Path(data_dir).expanduser().resolve()
        if not root.is_dir():
            raise layout_error(root, name)
        module, scan, _ = _SOURCES[name]
        num_classes = options.get('num_classes', FER_DATASETS[name].num_classes[-1])
        code = b''.join(Path(m.__file__).read_bytes() for m in (module, builder, labels))
        dataset, report = build_dataset(name, scan(root, **options), num_classes, {'root': str(root), **options},
                                        code, on_bad=on_bad, cache_dir=cache_dir)
    return (dataset, report) if return_report else dataset
