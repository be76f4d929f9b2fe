"""Turn a scanned FER source (records per split) into a cached `DatasetDict`, accounting for every file.

A source module reads the official label files into a `SourceScan`: one record per example (an image
file, optionally a face box to crop, or in-memory pixels), its canonical label and the native one, plus
the counts of what it dropped and why. `build_dataset` then decodes each image once (a missing or
undecodable image is recorded with its path, never silently lost), crops faces, and caches the result
under a fingerprint of the label files' contents and the images' sizes and mtimes, so that editing a
label file or touching an image gives a fresh data set.

What a later load checks (`verification_mode`, `datasets.VerificationMode`'s names; the environment variable
`TIMM_DAN_VERIFICATION_MODE` sets it for every load of a process, e.g. for `train.py`):
- 'basic_checks' (default): no label file is read and no folder listed. One stat each of the label files, of the
  folders that hold the images (and their parents), and of up to `SAMPLED_IMAGES` images drawn once at the build
  (all of them in a smaller set), compared with what the last full check recorded; if all match, the cached set
  is loaded. The cost does not grow with the number of images. Anything else that differs runs the full check.
- 'all_checks': the full check: the source's scan reads every label file, each image is stat'ed once (size and
  mtime), the fingerprint is computed; the cached set of that fingerprint is reused, else it is built.
- 'no_checks': the last build of this data set, folder, options and reading code, without looking at the files.
An image rewritten in place under its old name (same folder entries) is seen by 'basic_checks' only when it is
among the sampled images; 'all_checks' sees it.
"""
import hashlib
import io
import json
import os
import random
import shutil
import stat
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from ..labels import canonical_names

__all__ = ['SourceScan', 'FERReport', 'BadImagesError', 'build_dataset', 'layout_error', 'VERIFICATION_MODES',
           'VERIFICATION_ENV', 'SAMPLED_IMAGES', 'resolve_verification_mode']

CACHE_VERSION = 1
_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
VERIFICATION_MODES = ('basic_checks', 'all_checks', 'no_checks')
"""What a load checks before reusing the cache (the names of `datasets.VerificationMode`); see the module's text."""
VERIFICATION_ENV = 'TIMM_DAN_VERIFICATION_MODE'
"""Environment variable giving the default `verification_mode` of every load."""
SAMPLED_IMAGES = 20_000
"""Images a 'basic_checks' load stats (every image of RAF-DB, SFEW, FERPlus; a fixed sample of AffectNet's)."""


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


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """Image files and other files in a folder, sorted by name (one listing; no stat per file where the file system
    reports entry types)."""
    with os.scandir(folder) as entries:
        files = sorted(Path(entry.path) for entry in entries if entry.is_file())
    images = [p for p in files if p.suffix.lower() in _IMAGE_SUFFIXES]
    return images, [p for p in files if p.suffix.lower() not in _IMAGE_SUFFIXES]


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _stat(path: str) -> Optional[tuple[int, int]]:
    """(size, mtime_ns) of a regular file; None when it is missing or not a file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


Stats = dict[str, list[Optional[tuple[int, int]]]]  # split -> per record, `_stat` of its image (None: no file)


def _stat_records(scan: SourceScan) -> Stats:
    """One stat per record's image, the only per-image file system call of a full check."""
    return {split: [_stat(r['path']) if 'path' in r else None for r in records]
            for split, records in scan.splits.items()}


def _fingerprint(name: str, options: dict[str, Any], scan: SourceScan, code: bytes, stats: Stats) -> str:
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, name, options], sort_keys=True, default=str).encode())
    digest.update(code)
    for path in scan.label_files:
        digest.update(f'{path}:{_file_hash(path)}'.encode())
    for path in scan.stat_files:
        digest.update(f'{path}:{_stat(str(path))}'.encode())
    for split, records in scan.splits.items():
        digest.update(split.encode())
        for r, st in zip(records, stats[split], strict=True):
            if 'path' in r:
                digest.update(f'{r["path"]}:{st}:{r.get("bbox")}'.encode())
        digest.update(json.dumps(scan.dropped.get(split, {}), sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _watch_stat(path: str) -> Optional[list[int]]:
    """What the quick check compares: size, mtime and inode (a file replaced by another changes the inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _watched(scan: SourceScan, fingerprint: str) -> list[str]:
    """The paths a quick check stats: the label files, the folders holding the images and annotation files (and
    their parents: a new class folder), and up to `SAMPLED_IMAGES` of those files, drawn from the fingerprint."""
    files = [r['path'] for records in scan.splits.values() for r in records if 'path' in r]
    files += [str(path) for path in scan.stat_files]
    folders = {os.path.dirname(path) for path in files}
    folders |= {os.path.dirname(folder) for folder in folders}
    sample = random.Random(fingerprint).sample(files, min(SAMPLED_IMAGES, len(files)))
    return [str(path) for path in scan.label_files] + sorted(folders) + sample


def _index_path(root: Path, name: str, options: dict[str, Any], code: bytes) -> Path:
    """Where the last full check of this data set, folder, options and reading code is recorded."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, name, options], sort_keys=True, default=str).encode())
    digest.update(code)
    return root / 'index' / f'{digest.hexdigest()[:32]}.json'


def _quick_hit(index_path: Path, root: Path, mode: str) -> Optional[Path]:
    """The cached folder the index names, if it is there and (unless 'no_checks') every watched path is unchanged."""
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        return None
    target = root / index['fingerprint']
    if not (target / 'report.json').is_file():
        return None
    if mode == 'no_checks' or all(_watch_stat(path) == recorded for path, recorded in index['watched']):
        return target
    return None


def _write_index(index_path: Path, fingerprint: str, watched: list[tuple[str, Optional[list[int]]]]) -> None:
    index_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_path.with_name(f'.{index_path.name}.{os.getpid()}')
    tmp.write_text(json.dumps({'fingerprint': fingerprint, 'watched': watched}))
    os.replace(tmp, index_path)


def resolve_verification_mode(mode: Optional[str] = None) -> str:
    """`mode` (a name or a `datasets.VerificationMode`), else `$TIMM_DAN_VERIFICATION_MODE`, else 'basic_checks'."""
    mode = mode or os.environ.get(VERIFICATION_ENV) or 'basic_checks'
    mode = getattr(mode, 'value', mode)
    if mode not in VERIFICATION_MODES:
        raise ValueError(f'verification_mode must be one of {", ".join(VERIFICATION_MODES)}, got {mode!r}'
                         + (f' (from ${VERIFICATION_ENV})' if mode == os.environ.get(VERIFICATION_ENV) else ''))
    return mode


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
    stats: list[Optional[tuple[int, int]]]  # `_stat` of each record's image: None where it is missing
    bad: list = field(default_factory=list)  # (kind, path, error) of missing and undecodable images
    written: int = 0


def _checked_image(record: dict[str, Any]) -> dict[str, Any]:
    """The `image` value of a record whose file exists: decoded once in full (truncated or non-image files fail
    here), cropped to its face box if it has one (re-encoded), else stored by path."""
    with PILImage.open(record['path']) as im:
        im.load()
        if record.get('bbox') is None:
            return {'bytes': None, 'path': record['path']}
        x, y, w, h = record['bbox']
        box = (max(x, 0), max(y, 0), min(x + w, im.width), min(y + h, im.height))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f'face box {tuple(record["bbox"])} lies outside the {im.width}x{im.height} image')
        return {'bytes': _encode(im.crop(box), im.format), 'path': None}


def _examples(job: _Job) -> Iterator[dict[str, Any]]:
    bad, columns = job.bad, job.columns
    for r, st in zip(job.records, job.stats, strict=True):
        if 'pixels' in r:
            image = {'bytes': _encode(PILImage.fromarray(r['pixels']), 'PNG'), 'path': None}
        elif st is None:
            bad.append(('missing', r['path'], ''))
            continue
        else:
            try:
                image = _checked_image(r)
            except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... on bad files
                bad.append(('corrupt', r['path'], f'{type(e).__name__}: {e}'))
                continue
        job.written += 1
        yield {'image': image, **{c: r.get(c) for c in columns}}


def _cache_root(cache_dir: Optional[str]) -> Path:
    return Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / 'timm_dan'


def build_dataset(name: str, scan: Union[SourceScan, Callable[[], SourceScan]], num_classes: int,
                  options: dict[str, Any], code: bytes, on_bad: str = 'error', cache_dir: Optional[str] = None,
                  verification_mode: Optional[str] = None) -> tuple[DatasetDict, FERReport]:
    """Build (or load from the cache) the `DatasetDict` of a scan; apply `on_bad` to missing/corrupt images.

    `scan` may be a callable that scans: it is called only when the quick check (`verification_mode`, see the
    module) does not find the cache current.
    """
    if on_bad not in ('error', 'skip'):
        raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
    mode = resolve_verification_mode(verification_mode)
    root = _cache_root(cache_dir) / name
    index_path = _index_path(root, name, options, code)
    target = _quick_hit(index_path, root, mode) if mode != 'all_checks' else None
    if target is not None:
        dataset = DatasetDict.load_from_disk(str(target))
        report = FERReport(**json.loads((target / 'report.json').read_text()))
    else:
        scan = scan() if callable(scan) else scan
        features = Features({
            'image': Image(),
            'label': ClassLabel(names=list(canonical_names(num_classes))),
            **scan.features,
            'file': Value('string'),
        })
        columns = [c for c in features if c != 'image']
        stats = _stat_records(scan)
        fingerprint = _fingerprint(name, options, scan, code, stats)
        # stat'ed before the build: a change made while it runs is seen by the next load
        watched = [(path, _watch_stat(path)) for path in _watched(scan, fingerprint)]
        target = root / fingerprint
        if (target / 'report.json').is_file():
            dataset = DatasetDict.load_from_disk(str(target))
            report = FERReport(**json.loads((target / 'report.json').read_text()))
        else:
            dataset, report = _build(scan, stats, features, columns, fingerprint, target)
        _write_index(index_path, fingerprint, watched)
    if report.total('missing') or report.total('corrupt'):
        if on_bad == 'error':
            raise BadImagesError(name, report)
        warnings.warn(str(BadImagesError(name, report)).rsplit('\n', 1)[0] + '\n(skipped: on_bad="skip")',
                      stacklevel=3)
    return dataset, report


def _build(scan: SourceScan, stats: Stats, features: Features, columns: list[str], fingerprint: str,
           target: Path) -> tuple[DatasetDict, FERReport]:
    target.parent.mkdir(parents=True, exist_ok=True)
    splits, kept, missing, corrupt = {}, {}, {}, {}
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        for split, records in scan.splits.items():
            job = _Job(records, columns, stats[split])
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
