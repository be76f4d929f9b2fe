"""RAF-DB basic: `EmoLabel/list_patition_label.txt` + `Image/aligned/` (or `Image/original/`)."""
from collections import Counter
from pathlib import Path

from datasets import Value

from ..builder import SourceScan, layout_error
from ..labels import RAFDB_TO_CANONICAL
from ._parse import code

LABEL_FILE = 'EmoLabel/list_patition_label.txt'  # sic: the distributed file name
MEANING = 'surprise, fear, disgust, happiness, sadness, anger, neutral'


def scan(root: Path, aligned: bool = True) -> SourceScan:
    label_file = root / LABEL_FILE
    image_dir = root / 'Image' / ('aligned' if aligned else 'original')
    for path in (label_file, image_dir):
        if not path.exists():
            raise layout_error(path, 'rafdb')
    splits = {'train': [], 'test': []}
    for line_no, line in enumerate(label_file.read_text(encoding='utf-8-sig').splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].startswith(('train_', 'test_')):
            raise ValueError(f'{label_file}:{line_no}: expected "train_00001.jpg 5" or "test_0001.jpg 3", got {line!r}')
        name, native = parts[0], code(parts[1], label_file, line_no, range(1, 8), MEANING)
        stem, suffix = name.rsplit('.', 1) if '.' in name else (name, 'jpg')
        image = image_dir / (f'{stem}_aligned.{suffix}' if aligned else name)
        splits[name.split('_', 1)[0]].append({
            'path': str(image), 'file': name, 'source_label': native, 'label': RAFDB_TO_CANONICAL[native - 1],
        })
    return SourceScan(splits=splits, features={'source_label': Value('int32')}, label_files=[label_file],
                      dropped={s: Counter() for s in splits})
