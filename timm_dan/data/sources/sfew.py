"""SFEW 2.0: `Train/<Class>/` and `Val/<Class>/`, class folders matched by name (any case, synonyms accepted)."""
from collections import Counter
from pathlib import Path

from datasets import Value

from ...labels import LABELS, SFEW, SYNONYMS, canonical_label
from ..builder import SourceScan, layout_error, list_images
from .base import NON_COMMERCIAL, CardEntry, FERDatasetInfo, FERSource

SPLIT_FOLDERS = {'train': ('train',), 'validation': ('val', 'validation')}


def _find(root: Path, names: tuple) -> Path:
    for child in sorted(root.iterdir()) if root.is_dir() else ():
        if child.is_dir() and child.name.lower() in names:
            return child
    raise layout_error(root / names[0].capitalize(), 'sfew')


def _folder_label(class_dir: Path) -> int:
    """The canonical index a class folder's name means; a canonical class SFEW lacks (a `contempt` folder in some
    copies) keeps its index, beyond SFEW's classes, for the caller to drop and count."""
    try:
        return LABELS.index(canonical_label(class_dir.name))
    except KeyError:
        raise ValueError(f'{class_dir}: unknown class folder {class_dir.name!r}; expected one of '
                         f'{", ".join(SFEW.native)} (any case) or a synonym: {", ".join(sorted(SYNONYMS))}') from None


def scan(root: Path) -> SourceScan:
    num_classes = len(SFEW)
    splits, dropped = {}, {}
    for split, names in SPLIT_FOLDERS.items():
        folder = _find(root, names)
        records, dropped[split] = [], Counter()
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            label = _folder_label(class_dir)
            images, others = list_images(class_dir, root)
            if others:
                dropped[split][f'not an image file ({class_dir.name})'] += len(others)
            if label >= num_classes:
                dropped[split][f'{class_dir.name} (num_classes={num_classes})'] += len(images)
                continue
            records += [{'path': str(p), 'file': str(p.relative_to(root)), 'source_label': class_dir.name,
                         'label': label} for p in images]
        splits[split] = records
    return SourceScan(splits=splits, features={'source_label': Value('string')}, label_files=[], dropped=dropped)


SOURCE = FERSource(
    info=FERDatasetInfo(
        name='sfew', title='SFEW 2.0', splits=('train', 'validation'), num_classes=(7,),
        layout=(
            'DATA_DIR/\n'
            '  Train/<Class>/*.png|jpg   class folders Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise\n'
            '  Val/<Class>/*.png|jpg     (any case; synonyms such as anger, happiness, sadness accepted)'
        ),
        citation=('Dhall, Goecke, Lucey, Gedeon. Static Facial Expression Analysis in Tough Conditions: Data, '
                  'Evaluation Protocol and Benchmark. ICCV Workshops 2011.'),
    ),
    scan=scan, label_map=SFEW,
    cards={'sfew': CardEntry(
        'SFEW 2.0', 'sfew', 'validation', 'faces detected and cropped from film frames', NON_COMMERCIAL,
    )},
)
