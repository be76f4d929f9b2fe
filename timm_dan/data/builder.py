"""Turn a scanned FER source (records per split) into a cached `DatasetDict`, accounting for every file.

A source module reads the official label files into a `SourceScan`: one record per example (an image
file, optionally a face box to crop, or in-memory pixels), its canonical label and the native one, plus
the counts of what it dropped and why. `build_dataset` then decodes each image once (a missing or
undecodable image is recorded with its path, never silently lost), crops faces, and caches the result
under a fingerprint of the label files' contents and the images' sizes and mtimes, so that editing a
label file or touching an image gives a fresh data set.
"""
import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from ..labels import canonical_names

__all__ = ['SourceScan', 'FERReport', 'BadImagesError', 'OutsideDataDirError', 'build_dataset', 'layout_error',
           'inside_data_dir', 'check_inside']

CACHE_VERSION = 1
_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


@dataclass
class SourceScan:
    """What a source module read from the label files.

    Each record: `label` (canonical), `source_label`, `file` (as named by the source), then either `path`
    (absolute image path, with an optional `bbox` = x, y, w, h to crop) or `pixels` (H x W uint8 array),
    plus any extra columns declared in `features`.
    """
    splits: dict[str, list[dict[str, Any]]]
    features: dict[str, Any]  # extra columns: name -> datasets feature (source_label included)
    label_files: list[Path]  # hashed by content into the fingerprint
    stat_files: list[Path] = field(default_factory=list)  # many small annotation files: size + mtime only
    dropped: dict[str, Counter] = field(default_factory=dict)  # split -> reason -> count


@dataclass
class FERReport:
    """Per split: examples kept, dropped by a labelling rule (with the reason), missing and corrupt images."""
    kept: dict[str, int]
    dropped: dict[str, dict[str, int]]
    missing: dict[str, list[str]]
    corrupt: dict[str, list[str]]  # 'path: error'

    def total(self, kind: str) -> int:
        value = getattr(self, kind)
        return sum(sum(v.values()) if isinstance(v, dict) else len(v) for v in value.values())

    def to_dict(self) -> dict[str, Any]:
        return {'kept': self.kept, 'dropped': self.dropped, 'missing': self.missing, 'corrupt': self.corrupt}


class BadImagesError(ValueError):
    """Listed images that are missing or cannot be decoded (pass `on_bad='skip'` to skip them with a warning)."""

    def __init__(self, name: str, report: FERReport):
        self.report = report
        lines = [f'{name}: {report.total("missing")} missing and {report.total("corrupt")} undecodable image(s):']
        for kind in ('missing', 'corrupt'):
            for split, paths in getattr(report, kind).items():
                lines += [f'  {kind} ({split}): {p}' for p in paths[:20]]
                if len(paths) > 20:
                    lines.append(f'  ... and {len(paths) - 20} more {kind} in {split}')
        lines.append("Fix or remove them, or pass on_bad='skip' to skip them (with a warning).")
        super().__init__('\n'.join(lines))


def layout_error(path: Path, name: str) -> FileNotFoundError:
    """A FileNotFoundError that names the missing path and shows the official layout."""
    from .registry import FER_DATASETS
    return FileNotFoundError(f'{name}: {path} not found. Expected the official layout:\n{FER_DATASETS[name].layout}')


class OutsideDataDirError(ValueError):
    """A label file names (or a folder holds) a path that leads out of the data set's folder; it is never opened."""


def inside_data_dir(root: Path, base: Path, name: str, where: str) -> Path:
    """`base / name`, where `name` comes from a label file (`where` = its 'file:line') and `base` is a folder
    inside the data directory `root`; refused with an `OutsideDataDirError` naming `where` if `name` is absolute,
    climbs out with '..', or the path leads through a symlink to anything outside `root`. Only lstat/readlink
    touch the path here: nothing outside `root` is opened."""
    if '\x00' in name:
        raise OutsideDataDirError(f'{where}: the path {name!r} contains a NUL character')
    if Path(name).is_absolute():
        raise OutsideDataDirError(f'{where}: {name!r} is an absolute path; expected a path relative to {base}')
    if '..' in Path(name).parts:
        raise OutsideDataDirError(f"{where}: {name!r} climbs out of {base} with '..'; expected a path inside it")
    path = base / name
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise OutsideDataDirError(
            f'{where}: {path} leads through a symlink to {real}, outside the data directory {root}. Only files '
            f'inside it are read: copy or bind-mount them into it, or pass the folder they are in as data_dir')
    return path


def check_inside(root: Path, *paths: Path) -> None:
    """The official files and folders of a layout (`root / 'EmoLabel/...'`) must not be symlinks out of `root`."""
    for path in paths:
        inside_data_dir(root, root, str(path.relative_to(root)), str(path))


def list_images(folder: Path, root: Optional[Path] = None) -> tuple[list[Path], list[Path]]:
    """Image files and other files in a folder, sorted by name; with `root`, an image that is a symlink out of the
    data directory `root` is an `OutsideDataDirError` naming it."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in _IMAGE_SUFFIXES]
    if root is not None:
        for image in images:
            inside_data_dir(root, image.parent, image.name, str(image))
    return images, [p for p in files if p.suffix.lower() not in _IMAGE_SUFFIXES]


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _stat(path: str) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _fingerprint(name: str, options: dict[str, Any], scan: SourceScan, code: bytes) -> str:
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, name, options], sort_keys=True, default=str).encode())
    digest.update(code)
    for path in scan.label_files:
        digest.update(f'{path}:{_file_hash(path)}'.encode())
    for path in scan.stat_files:
        digest.update(f'{path}:{_stat(str(path))}'.encode())
    for split, records in scan.splits.items():
        digest.update(split.encode())
        for r in records:
            if 'path' in r:
                digest.update(f'{r["path"]}:{_stat(r["path"])}:{r.get("bbox")}'.encode())
        digest.update(json.dumps(scan.dropped.get(split, {}), sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _encode(image: PILImage.Image, source_format: Optional[str]) -> bytes:
    buffer = io.BytesIO()
    if source_format == 'JPEG' and image.mode in ('RGB', 'L'):
        image.save(buffer, format='JPEG', quality=95)
    else:
        image.save(buffer, format='PNG')
    return buffer.getvalue()


@dataclass
class _Job:
    """One split to build (one object: `from_generator` would try to shard list arguments)."""
    records: list[dict[str, Any]]
    columns: list[str]
    bad: list = field(default_factory=list)  # (kind, path, error) of missing and undecodable images
    written: int = 0


def _examples(job: _Job) -> Iterator[dict[str, Any]]:
    bad, columns = job.bad, job.columns
    for r in job.records:
        if 'pixels' in r:
            image = {'bytes': _encode(PILImage.fromarray(r['pixels']), 'PNG'), 'path': None}
        elif not os.path.isfile(r['path']):
            bad.append(('missing', r['path'], ''))
            continue
        else:
            try:
                with PILImage.open(r['path']) as im:
                    im.load()  # decodes fully: truncated or non-image files fail here
                    if r.get('bbox') is not None:
                        x, y, w, h = r['bbox']
                        box = (max(x, 0), max(y, 0), min(x + w, im.width), min(y + h, im.height))
                        if box[2] <= box[0] or box[3] <= box[1]:
                            size = f'{im.width}x{im.height}'
                            raise ValueError(f'face box {tuple(r["bbox"])} lies outside the {size} image')
                        image = {'bytes': _encode(im.crop(box), im.format), 'path': None}
                    else:
                        image = {'bytes': None, 'path': r['path']}
            except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... on bad files
                bad.append(('corrupt', r['path'], f'{type(e).__name__}: {e}'))
                continue
        job.written += 1
        yield {'image': image, **{c: r.get(c) for c in columns}}


def _cache_root(cache_dir: Optional[str]) -> Path:
    return Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / 'timm_dan'


def build_dataset(name: str, scan: SourceScan, num_classes: int, options: dict[str, Any], code: bytes,
                  on_bad: str = 'error', cache_dir: Optional[str] = None) -> tuple[DatasetDict, FERReport]:
    """Build (or load from the cache) the `DatasetDict` of a scan; apply `on_bad` to missing/corrupt images."""
    if on_bad not in ('error', 'skip'):
        raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
    features = Features({
        'image': Image(),
        'label': ClassLabel(names=list(canonical_names(num_classes))),
        **scan.features,
        'file': Value('string'),
    })
    columns = [c for c in features if c != 'image']
    fingerprint = _fingerprint(name, options, scan, code)
    target = _cache_root(cache_dir) / name / fingerprint
    if (target / 'report.json').is_file():
        dataset = DatasetDict.load_from_disk(str(target))
        report = FERReport(**json.loads((target / 'report.json').read_text()))
    else:
        dataset, report = _build(scan, features, columns, fingerprint, target)
    if report.total('missing') or report.total('corrupt'):
        if on_bad == 'error':
            raise BadImagesError(name, report)
        warnings.warn(str(BadImagesError(name, report)).rsplit('\n', 1)[0] + '\n(skipped: on_bad="skip")',
                      stacklevel=3)
    return dataset, report


def _build(scan: SourceScan, features: Features, columns: list[str], fingerprint: str,
           target: Path) -> tuple[DatasetDict, FERReport]:
    target.parent.mkdir(parents=True, exist_ok=True)
    splits, kept, missing, corrupt = {}, {}, {}, {}
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        for split, records in scan.splits.items():
            job = _Job(records, columns)
            try:
                splits[split] = Dataset.from_generator(
                    _examples, features=features, cache_dir=os.path.join(tmp, 'generator'), split=split,
                    gen_kwargs={'job': job}, fingerprint=f'{fingerprint}-{split}',
                )
            except Exception:
                if job.written or len(job.bad) != len(records):
                    raise
                # every image of the split is missing or corrupt: keep the split, empty, and report them
                splits[split] = Dataset.from_dict({c: [] for c in features}, features=features, split=split)
            bad = job.bad
            kept[split] = splits[split].num_rows
            missing[split] = [p for kind, p, _ in bad if kind == 'missing']
            corrupt[split] = [f'{p}: {err}' for kind, p, err in bad if kind == 'corrupt']
        report = FERReport(kept=kept, dropped={s: dict(c) for s, c in scan.dropped.items()},
                           missing=missing, corrupt=corrupt)
        staging = Path(tmp) / 'dataset'
        empty = {split: 1 for split, ds in splits.items() if ds.num_rows == 0}  # else no shard would be written
        DatasetDict(splits).save_to_disk(str(staging), num_shards=empty or None)
        (staging / 'report.json').write_text(json.dumps(report.to_dict(), indent=1))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return DatasetDict.load_from_disk(str(target)), report
