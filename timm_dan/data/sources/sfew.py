"""SFEW 2.0: `Train/<Class>/` and `Val/<Class>/`, class folders matched case-insensitively with synonyms."""
from collections import Counter
from pathlib import Path

from datasets import Value

from ..builder import SourceScan, layout_error, list_images
from ..labels import SFEW_FOLDER_TO_CANONICAL

SPLIT_FOLDERS = {'train': ('train',), 'validation': ('val', 'validation')}


def _find(root: Path, names: tuple) -> Path:
    for child in sorted(root.iterdir()) if root.is_dir() else ():
        if child.is_dir() and child.name.lower() in names:
            return child
    raise layout_error(root / names[0].capitalize(), 'sfew')


def scan(root: Path, num_classes: int = 7) -> SourceScan:
    splits, dropped = {}, {}
    for split, names in SPLIT_FOLDERS.items():
        folder = _find(root, names)
        records, dropped[split] = [], Counter()
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            label = SFEW_FOLDER_TO_CANONICAL.get(class_dir.name.lower())
            if label is None:
                raise ValueError(f'{class_dir}: unknown class folder {class_dir.name!r}; expected one of '
                                 f'{sorted(SFEW_FOLDER_TO_CANONICAL)} (any case)')
            images, others = list_images(class_dir)
            if others:
                dropped[split][f'not an image file ({class_dir.name})'] += len(others)
            if label >= num_classes:
                dropped[split][f'{class_dir.name} (num_classes={num_classes})'] += len(images)
                continue
            records += [{'path': str(p), 'file': str(p.relative_to(root)), 'source_label': class_dir.name,
                         'label': label} for p in images]
        splits[split] = records
    return SourceScan(splits=splits, features={'source_label': Value('string')}, label_files=[], dropped=dropped)
