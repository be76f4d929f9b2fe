"""FER2013 (`fer2013.csv`) and FERPlus (`fer2013new.csv` votes joined with the FER2013 pixels)."""
import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from datasets import Sequence, Value

from ..builder import SourceScan, layout_error
from ..labels import FER2013_TO_CANONICAL, FERPLUS_VOTE_TO_CANONICAL
from ._parse import code, parse

USAGE = {'Training': 'train', 'PublicTest': 'validation', 'PrivateTest': 'test'}
MEANING = 'angry, disgust, fear, happy, sad, surprise, neutral'
VOTE_COLUMNS = ('neutral', 'happiness', 'surprise', 'sadness', 'anger', 'disgust', 'fear', 'contempt', 'unknown',
                'NF')


def _rows(path: Path, header: tuple, name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of a csv whose first line must start with `header`."""
    if not path.is_file():
        raise layout_error(path, name)
    with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.reader(f)
        first = next(reader, [])
        if tuple(c.strip() for c in first[:len(header)]) != header:
            raise ValueError(f'{path}:1: expected the header {",".join(header)}, got {",".join(first)!r}')
        for row in reader:
            if row:
                yield reader.line_num, row


def _usage(text: str, path: Path, line: int) -> str:
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


def _fer2013_rows(path: Path) -> Iterator[tuple[int, int, np.ndarray, str]]:
    """(line, emotion code, 48x48 pixels, split) per row of fer2013.csv."""
    for line, row in _rows(path, ('emotion', 'pixels', 'Usage'), 'fer2013'):
        if len(row) != 3:
            raise ValueError(f'{path}:{line}: expected 3 columns (emotion, pixels, Usage), got {len(row)}')
        yield line, code(row[0], path, line, range(7), MEANING), _pixels(row[1], path, line), _usage(row[2], path, line)


def scan_fer2013(root: Path) -> SourceScan:
    path = root / 'fer2013.csv'
    splits = {split: [] for split in USAGE.values()}
    for line, native, pixels, split in _fer2013_rows(path):
        splits[split].append({'pixels': pixels, 'file': f'fer2013.csv:{line}', 'source_label': native,
                              'label': FER2013_TO_CANONICAL[native]})
    return SourceScan(splits=splits, features={'source_label': Value('int32')}, label_files=[path],
                      dropped={s: Counter() for s in splits})


def majority_vote(votes: np.ndarray) -> tuple[int, np.ndarray]:
    """FERPlus majority rule over the 10 vote columns: single votes are outliers and removed; the top class must
    hold more than half of the remaining votes (so ties are dropped). Returns (vote column or -1, distribution)."""
    votes = np.where(votes <= 1, 0, votes).astype(np.float64)
    total = votes.sum()
    top = int(votes.argmax())
    if total == 0 or votes[top] <= total / 2:
        return -1, votes
    return top, votes


def scan_ferplus(root: Path) -> SourceScan:
    new_path, pixels_path = root / 'fer2013new.csv', root / 'fer2013.csv'
    if not new_path.is_file():
        raise layout_error(new_path, 'ferplus')
    pixels = [(line, p) for line, _, p, _ in _fer2013_rows(pixels_path)]
    splits = {split: [] for split in USAGE.values()}
    dropped = {split: Counter() for split in USAGE.values()}
    rows = list(_rows(new_path, ('Usage', 'Image name'), 'ferplus'))
    if len(rows) != len(pixels):
        raise ValueError(f'{new_path}: {len(rows)} rows but {pixels_path} has {len(pixels)}: they must match row for '
                         'row (FERPlus relabels FER2013 in its order)')
    for (line, row), (_, image) in zip(rows, pixels, strict=True):
        if len(row) != 12:
            raise ValueError(f'{new_path}:{line}: expected 12 columns (Usage, Image name, {", ".join(VOTE_COLUMNS)}), '
                             f'got {len(row)}')
        split, name = _usage(row[0], new_path, line), row[1].strip()
        if not name:  # FERPlus blanks the name of images it removed
            dropped[split]['no image name (removed by FERPlus)'] += 1
            continue
        votes = np.array([parse(int, v, new_path, line, 'an integer vote count') for v in row[2:]])
        top, distribution = majority_vote(votes)
        if top < 0 or top >= 8:
            reason = 'no majority (tie or spread votes)' if top < 0 else f'{VOTE_COLUMNS[top]} majority'
            dropped[split][reason] += 1
            continue
        soft = np.zeros(8)
        soft[list(FERPLUS_VOTE_TO_CANONICAL)] = distribution[:8]
        splits[split].append({'pixels': image, 'file': name, 'source_label': top,
                              'label': FERPLUS_VOTE_TO_CANONICAL[top], 'soft_label': (soft / soft.sum()).tolist()})
    features = {'source_label': Value('int32'), 'soft_label': Sequence(Value('float32'), length=8)}
    return SourceScan(splits=splits, features=features, label_files=[new_path, pixels_path], dropped=dropped)
