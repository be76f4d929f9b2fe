"""RAF-DB basic: `EmoLabel/list_patition_label.txt` + `Image/aligned/` (or `Image/original/`)."""
from collections import Counter
from pathlib import Path

from datasets import Value

from ...labels import RAFDB
from ..builder import SourceScan, check_inside, inside_data_dir, layout_error
from ._parse import label_code, text_lines
from .base import NON_COMMERCIAL, CardEntry, FERDatasetInfo, FERSource

LABEL_FILE = 'EmoLabel/list_patition_label.txt'  # sic: the distributed file name

def scan(root: Path, aligned: bool) -> SourceScan:
    label_file = root / LABEL_FILE
    image_dir = root / 'Image' / ('aligned' if aligned else 'original')
    for path in (label_file, image_dir):
        if not path.exists():
            raise layout_error(path, 'rafdb')
    check_inside(root, label_file, image_dir)
    splits = {'train': [], 'test': []}
    for line_no, line in enumerate(text_lines(label_file), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].startswith(('train_', 'test_')):
            raise ValueError(f'{label_file}:{line_no}: expected "train_00001.jpg 5" or "test_0001.jpg 3", got {line!r}')
        name, native = parts[0], label_code(parts[1], label_file, line_no, RAFDB)
        stem, suffix = name.rsplit('.', 1) if '.' in name else (name, 'jpg')
        image = inside_data_dir(root, image_dir, f'{stem}_aligned.{suffix}' if aligned else name,
                                f'{label_file}:{line_no}')
        splits[name.split('_', 1)[0]].append({
            'path': str(image), 'file': name, 'source_label': native, 'label': RAFDB.from_code(native),
        })
    return SourceScan(splits=splits, features={'source_label': Value('int32')}, label_files=[label_file],
                      dropped={s: Counter() for s in splits})


SOURCE = FERSource(
    info=FERDatasetInfo(
        name='rafdb', title='RAF-DB (basic emotion subset)', splits=('train', 'test'), num_classes=(7,),
        layout=(
            'DATA_DIR/\n'
            '  EmoLabel/list_patition_label.txt   lines "train_00001.jpg 5" (labels 1..7: surprise, fear, disgust,\n'
            '                                     happiness, sadness, anger, neutral)\n'
            '  Image/aligned/train_00001_aligned.jpg   (100x100 aligned faces; aligned=False reads\n'
            '  Image/original/train_00001.jpg          the original images instead)'
        ),
        citation=('Li, Deng, Du. Reliable Crowdsourcing and Deep Locality-Preserving Learning for Expression '
                  'Recognition in the Wild. CVPR 2017.'),
    ),
    defaults={'aligned': True}, scan=scan, label_map=RAFDB,
    cards={'rafdb': CardEntry(
        'RAF-DB (basic, 7 classes)', 'raf-db', 'test',
        'tightly aligned face crops (RAF-DB ships 100x100 faces aligned on the eyes, upsampled to 224x224); '
        'detect and align faces the same way before prediction', NON_COMMERCIAL, 'http://www.whdeng.cn/raf/model1.html',
    )},
)
