"""FER2013: `fer2013.csv`, 48x48 grayscale pixels with their emotion code and Usage (its split)."""
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from datasets import Value

from ...labels import FER2013
from ..builder import SourceScan, check_inside, layout_error
from ._parse import csv_lines, label_code, parse
from .base import NON_COMMERCIAL, CardEntry, FERDatasetInfo, FERSource

USAGE = {'Training': 'train', 'PublicTest': 'validation', 'PrivateTest': 'test'}


def csv_rows(path: Path, header: tuple, name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of a csv whose first line must start with `header`."""
    if not path.is_file():
        raise layout_error(path, name)
    check_inside(path.parent, path)
    with open(path, newline='', encoding='utf-8-sig') as f:
        rows = csv_lines(f, path)
        _, first = next(rows, (1, []))
        if tuple(c.strip() for c in first[:len(header)]) != header:
            raise ValueError(f'{path}:1: expected the header {",".join(header)}, got {",".join(first)!r}')
        for line, row in rows:
            if row:
                yield line, row


def usage_split(text: str, path: Path, line: int) -> str:
    if text not in USAGE:
        raise ValueError(f'{path}:{line}: expected Usage Training, PublicTest or PrivateTest, got {text!r}')
    return USAGE[text]


def _pixels(text: str, path: Path, line: int) -> np.ndarray:
    values = text.split()
    if len(values) != 48 * 48:
        raise ValueError(f'{path}:{line}: expected 2304 pixel values (48x48), got {len(values)}')
    pixels = parse(lambda v: np.array(v, dtype=np.int64), values, path, line, 'integer pixel values')
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f'{path}:{line}: pixel values must lie in 0..255')
    return pixels.astype(np.uint8).reshape(48, 48)


def fer2013_rows(path: Path) -> Iterator[tuple[int, int, np.ndarray, str]]:
    """(line, emotion code, 48x48 pixels, split) per row of fer2013.csv."""
    for line, row in csv_rows(path, ('emotion', 'pixels', 'Usage'), 'fer2013'):
        if len(row) != 3:
            raise ValueError(f'{path}:{line}: expected 3 columns (emotion, pixels, Usage), got {len(row)}')
        native = label_code(row[0], path, line, FER2013)
        yield line, native, _pixels(row[1], path, line), usage_split(row[2], path, line)


def scan(root: Path) -> SourceScan:
    path = root / 'fer2013.csv'
    splits = {split: [] for split in USAGE.values()}
    for line, native, pixels, split in fer2013_rows(path):
        splits[split].append({'pixels': pixels, 'file': f'fer2013.csv:{line}', 'source_label': native,
                              'label': FER2013.canonical(native)})
    return SourceScan(splits=splits, features={'source_label': Value('int32')}, label_files=[path],
                      dropped={s: Counter() for s in splits})


SOURCE = FERSource(
    info=FERDatasetInfo(
        name='fer2013', title='FER2013', splits=('train', 'validation', 'test'), num_classes=(7,),
        layout=(
            'DATA_DIR/\n'
            '  fer2013.csv   columns emotion,pixels,Usage (48x48 grayscale as 2304 space-separated values;\n'
            '                Usage Training / PublicTest / PrivateTest -> train / validation / test;\n'
            '                emotion 0..6 = angry, disgust, fear, happy, sad, surprise, neutral)'
        ),
        citation=('Goodfellow et al. Challenges in Representation Learning: A Report on Three Machine Learning '
                  'Contests. ICONIP 2013.'),
    ),
    scan=scan, label_map=FER2013,
    cards={'fer2013': CardEntry(
        'FER2013', 'fer2013', 'test', '48x48 grayscale face crops (replicated to 3 channels), upsampled',
        NON_COMMERCIAL,
    )},
)
