"""The built-in synthetic set: drawn in memory by `timm_dan.data.synthetic`, deterministic by seed."""
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

from ...labels import canonical_names
from .base import FERDatasetInfo, FERSource


def generate(num_samples: int, num_validation_samples: Optional[int], image_size: int, num_classes: int, seed: int,
             cache_dir: Optional[str] = None, splits: Optional[Sequence[str]] = None) -> DatasetDict:
    """Train and validation splits of drawn faces (or only `splits`), in canonical labels `LABELS[:num_classes]`,
    with each face's valence and arousal (its expression's circumplex place scaled by its intensity)."""
    from .. import synthetic  # draws with OpenCV: imported only when needed, so `timm-dan --help` stays light

    features = Features({
        'image': Image(),
        'label': ClassLabel(names=list(canonical_names(num_classes))),
        'file': Value('string'),
        'valence': Value('float32'),
        'arousal': Value('float32'),
    })
    drawn = {}
    for index, (split, n) in enumerate(synthetic.synthetic_sizes(num_samples, num_validation_samples).items()):
        if splits is not None and split not in splits:
            continue  # each split is seeded by its index: the others come out the same without it
        kwargs = dict(num_samples=n, image_size=image_size, num_classes=num_classes, seed=seed, split_index=index)
        # from_generator fingerprints the function and its arguments only: add the drawing code itself
        code = hashlib.sha256(Path(synthetic.__file__).read_bytes()).hexdigest()
        key = json.dumps({**kwargs, 'code': code}, sort_keys=True)
        drawn[split] = Dataset.from_generator(
            synthetic.generate_examples, features=features, gen_kwargs=kwargs, cache_dir=cache_dir,
            fingerprint=hashlib.sha256(key.encode()).hexdigest()[:32], split=split,
        )
    return DatasetDict(drawn)


SOURCE = FERSource(
    info=FERDatasetInfo(
        name='synthetic', title='Synthetic FACS-prototype faces (built in)', splits=('train', 'validation'),
        num_classes=(2, 3, 4, 5, 6, 7, 8),
        layout='(none: generated in memory, deterministic by seed)',
        citation='timm-dan procedural demo set; FACS prototypes after Ekman, Friesen, Hager. FACS manual, 2002.',
        needs_data_dir=False,
    ),
    defaults=dict(num_samples=4000, num_validation_samples=None, image_size=64, num_classes=8, seed=0),
    generate=generate,
)
