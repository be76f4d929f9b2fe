"""`load_fer_dataset`: any FER data set, in its official layout, as a `datasets.DatasetDict` in canonical labels."""
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from datasets import DatasetDict

from .. import labels
from . import builder, sources
from .builder import FERReport, build_dataset, layout_error
from .registry import SOURCES

__all__ = ['load_fer_dataset']


def _reader_code() -> bytes:
    """The code that turns files into a data set (all sources, the builder, the label maps): in the cache key."""
    files = sorted(Path(sources.__file__).parent.glob('*.py')) + [Path(builder.__file__), Path(labels.__file__)]
    return b''.join(path.read_bytes() for path in files)


def load_fer_dataset(name: str, data_dir: Optional[Union[str, Path]] = None, *, on_bad: str = 'error',
                     cache_dir: Optional[str] = None, return_report: bool = False,
                     verification_mode: Optional[str] = None, splits: Optional[Sequence[str]] = None,
                     **options: Any) -> Union[DatasetDict, tuple[DatasetDict, Optional[FERReport]]]:
    """Load a FER data set as a `DatasetDict` whose `label` is a `ClassLabel` in canonical order (`LABELS[:K]`).

    `name` is a key of `FER_DATASETS`; `data_dir` is the data set's root, unpacked as distributed
    (`FER_DATASETS[name].layout`). Columns: `image`, `label`, `source_label` (the native label), `file`, and
    where the source has them `bbox` (x, y, w, h of the cropped face), `landmarks`, `valence`, `arousal`
    (AffectNet, synthetic; None where AffectNet gives -2, "not annotated"), `gender`, `race`, `age` (RAF-DB's manual
    annotations, `ClassLabel`s), `soft_label` (FERPlus vote distribution), `confidence` (ExpW).
    Options:
        rafdb:     aligned (True; False reads Image/original/), attributes (True: the gender, race, age and
                   landmarks of Annotation/manual/ when that folder is present)
        affectnet: num_classes (8 or 7; codes 8-10, and contempt for 7, are dropped and counted)
        expw:      seed (0), split_fractions ((0.8, 0.1, 0.1) for train/validation/test, stratified by class)
        synthetic: num_samples (train size, 4000), num_validation_samples (num_samples // 4), image_size (64),
                   num_classes (8), seed (0)
        all:       on_bad ('error': missing or undecodable images raise `BadImagesError` listing them;
                   'skip': they are skipped with a warning), cache_dir (the `datasets` cache by default),
                   return_report (also return the `FERReport`: counts kept/dropped/missing/corrupt per split;
                   None for synthetic), verification_mode (what a cache hit checks: 'basic_checks', the default, stats
                   the label files, the image folders and a bounded sample of images, whatever the set's size;
                   'all_checks' re-reads the label files and stats every image; 'no_checks' trusts the cache;
                   `$TIMM_DAN_VERIFICATION_MODE` sets the default; docs/data.md), splits (build only these splits,
                   e.g. ['test'] to evaluate; default all)
    """
    source = SOURCES.get(name)
    if source is None:
        raise ValueError(f'unknown FER data set {name!r}; choose one of {sorted(SOURCES)}')
    unknown = set(options) - set(source.defaults)
    if unknown:
        raise TypeError(f'unknown options for {name}: {sorted(unknown)} (valid: {sorted(source.defaults)})')
    options = {**source.defaults, **options}
    if on_bad not in ('error', 'skip'):
        raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
    info = source.info
    if splits is not None and (not splits or set(splits) - set(info.splits)):
        raise ValueError(f'{name} has the splits {list(info.splits)}, not {list(splits)}')
    if source.generate is not None:
        if data_dir is not None:
            raise ValueError(f'{name} is generated in memory: it takes no data_dir')
        dataset, report = source.generate(**options, cache_dir=cache_dir, splits=splits), None
    else:
        if data_dir is None:
            raise ValueError(f'{name} needs data_dir, the folder that holds:\n{info.layout}')
        root = Path(data_dir).expanduser().resolve()
        if not root.is_dir():
            raise layout_error(root, name)
        num_classes = options.get('num_classes', info.num_classes[-1])

        def scan():
            found = source.scan(root, **options)
            if splits is None:
                return found
            return dataclasses.replace(  # only these are decoded and cached
                found, splits={s: found.splits[s] for s in splits if s in found.splits},
                dropped={s: c for s, c in found.dropped.items() if s in splits})

        # the splits asked are part of the cache key: a test-only build never answers a full load
        key = {'root': str(root), **options, **({'splits': sorted(splits)} if splits is not None else {})}
        dataset, report = build_dataset(name, scan, num_classes, key, _reader_code(), on_bad=on_bad,
                                        cache_dir=cache_dir, verification_mode=verification_mode)
    return (dataset, report) if return_report else dataset
