"""One fuzz target per parser that reads a user's file: `check(data)` writes `data` where the parser expects its
file and runs it. The only outcomes allowed are a parsed result or the project's own error naming the file; any
other exception escapes, and is a finding (`fuzz/run.py` saves it as a regression input).

Targets (the parsers' files): RAF-DB's list_patition_label.txt, AffectNet's training.csv and .npy annotations,
FER2013's fer2013.csv, FERPlus's fer2013new.csv, ExpW's label.lst, the training YAML, a Hub folder's config.json
RAF-DB's manual annotations (<image>_manu_attri.txt) and the predictor's image reader.
"""
import atexit
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ['Target', 'TARGETS', 'Finding']

MAX_PIXELS = 1 << 20  # the image reader's bomb guard, lowered so that each input decodes in milliseconds


class Finding(AssertionError):
    """A parser's outcome that is neither a result nor the project's own error naming the file."""


@dataclass(frozen=True)
class Target:
    name: str
    file: str  # the path `data` is written to, relative to the target's folder
    parse: Callable[[Path], Any]  # runs the parser on the target's folder
    errors: Callable[[], tuple[type, ...]]  # the project's error types allowed (imported when first needed)
    fixture: Callable[[Path, bytes], None] = lambda root, data: None  # other files the parser reads
    max_len: int = 0  # longest input the fuzzer makes, if more than the campaign's default

    def check(self, data: bytes) -> None:
        root = _root(self.name)
        path = root / self.file
        self.fixture(root, data)
        path.write_bytes(data)
        try:
            self.parse(root)
        except self.errors() as e:
            if str(path) not in str(e) and str(root) not in str(e):
                raise Finding(f'{self.name}: {type(e).__name__} does not name {path}: {e}') from e


_ROOTS: dict[str, Path] = {}


def _root(name: str) -> Path:
    """The target's folder, laid out once per process (a temporary folder)."""
    if name not in _ROOTS:
        root = Path(tempfile.mkdtemp(prefix=f'timm-dan-fuzz-{name}-'))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        for folder in _FOLDERS.get(name, ()):
            (root / folder).mkdir(parents=True, exist_ok=True)
        _ROOTS[name] = root
    return _ROOTS[name]


_FOLDERS = {
    'rafdb_list': ('EmoLabel', 'Image/aligned'),
    'rafdb_manual': ('EmoLabel', 'Image/aligned', 'Annotation/manual'),
    'affectnet_csv': ('Manually_Annotated_file_lists', 'Manually_Annotated_Images'),
    'affectnet_npy': ('train_set/images', 'train_set/annotations', 'val_set/images', 'val_set/annotations'),
    'expw_lst': ('label', 'image/origin'),
    'hub_config': ('folder',),
}


def _data_errors() -> tuple[type, ...]:
    return ValueError, FileNotFoundError  # parse errors (file:line), layout errors, OutsideDataDirError


def _rafdb(root: Path):
    from timm_dan.data.sources import rafdb
    return rafdb.scan(root, aligned=True, attributes=True)


def _rafdb_label_file(root: Path, data: bytes) -> None:
    """The fuzzed file is train_00001's manual annotation; the label list names that one image."""
    (root / 'EmoLabel' / 'list_patition_label.txt').write_text('train_00001.jpg 1\n')


def _affectnet_csv(root: Path):
    from timm_dan.data.sources import affectnet
    return affectnet.scan(root, num_classes=8)


def _affectnet_validation_csv(root: Path, data: bytes) -> None:
    path = root / 'Manually_Annotated_file_lists' / 'validation.csv'
    if not path.exists():
        path.write_text('1/a.jpg,0,0,8,8,1;2,1,0.5,-0.5\n')


def _affectnet_npy(root: Path):
    from timm_dan.data.sources import affectnet
    return affectnet.scan(root, num_classes=8)


def _affectnet_npy_fixture(root: Path, data: bytes) -> None:
    """The fuzzed file is train_set's 0_exp.npy; its valence, arousal and landmarks get the same bytes."""
    annotations = root / 'train_set' / 'annotations'
    for suffix in ('val', 'aro', 'lnd'):
        (annotations / f'0_{suffix}.npy').write_bytes(data)
    exp = root / 'val_set' / 'annotations' / '0_exp.npy'
    if not exp.exists():
        import numpy as np
        np.save(exp, np.array(1))


def _fer2013(root: Path):
    from timm_dan.data.sources import fer2013
    return fer2013.scan(root)


def _ferplus(root: Path):
    from timm_dan.data.sources import ferplus
    return ferplus.scan(root)


def _ferplus_pixels(root: Path, data: bytes) -> None:
    """fer2013.csv with as many rows as the fuzzed fer2013new.csv has (up to 50), so that the votes are read."""
    rows = min(max(data.count(b'\n') - 1, 0), 50)
    pixels = ' '.join(['128'] * 2304)
    (root / 'fer2013.csv').write_text('emotion,pixels,Usage\n' + f'3,{pixels},Training\n' * rows)


def _expw(root: Path):
    from timm_dan.data.sources import expw
    return expw.scan(root, seed=0, split_fractions=(0.8, 0.1, 0.1))


def _train_yaml(root: Path):
    from timm_dan.training.config import load_config
    return load_config(str(root / 'train.yaml'))


def _config_errors() -> tuple[type, ...]:
    from timm_dan.training.config import ConfigError
    return (ConfigError,)


def _hub_config(root: Path):
    from timm_dan.models.guards import read_model_config
    return read_model_config(root / 'folder')


def _hub_errors() -> tuple[type, ...]:
    from timm_dan.models.guards import ModelConfigError
    return ModelConfigError, FileNotFoundError


def _image(root: Path):
    import numpy as np

    from timm_dan.inference.io import load_image
    image = load_image(root / 'image', max_pixels=MAX_PIXELS)
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise Finding(f'load_image returned {type(image).__name__} {getattr(image, "shape", "")}')
    return image


def _image_errors() -> tuple[type, ...]:
    from timm_dan.inference.io import ImageLoadError
    return (ImageLoadError,)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target('rafdb_list', 'EmoLabel/list_patition_label.txt', _rafdb, _data_errors),
    Target('rafdb_manual', 'Annotation/manual/train_00001_manu_attri.txt', _rafdb, _data_errors, _rafdb_label_file),
    Target('affectnet_csv', 'Manually_Annotated_file_lists/training.csv', _affectnet_csv, _data_errors,
           _affectnet_validation_csv),
    Target('affectnet_npy', 'train_set/annotations/0_exp.npy', _affectnet_npy, _data_errors, _affectnet_npy_fixture),
    Target('fer2013_csv', 'fer2013.csv', _fer2013, _data_errors, max_len=20_000),  # a row holds 2304 pixels
    Target('ferplus_csv', 'fer2013new.csv', _ferplus, _data_errors, _ferplus_pixels),
    Target('expw_lst', 'label/label.lst', _expw, _data_errors),
    Target('train_yaml', 'train.yaml', _train_yaml, _config_errors),
    Target('hub_config', 'folder/config.json', _hub_config, _hub_errors),
    Target('image_reader', 'image', _image, _image_errors),
)}
