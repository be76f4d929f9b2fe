"""What a source file declares about its data set: `FERSource` (its `FERDatasetInfo`, `load_fer_dataset` options,
label map, reader) and the `CardEntry`s that model cards quote."""
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from ...labels import LabelMap

__all__ = ['FERDatasetInfo', 'CardEntry', 'FERSource', 'NON_COMMERCIAL']

NON_COMMERCIAL = 'Licensed for non-commercial research only; the images may not be redistributed.'


@dataclass(frozen=True)
class FERDatasetInfo:
    name: str
    title: str
    splits: tuple[str, ...]
    num_classes: tuple[int, ...]  # class counts it can be loaded with (canonical order, `LABELS[:K]`)
    layout: str  # the official layout under `data_dir`, shown in errors and docs
    citation: str
    needs_data_dir: bool = True


@dataclass(frozen=True)
class CardEntry:
    """What a model card says about a data set it was trained or evaluated on (`timm_dan.hub.DatasetInfo`)."""
    name: str  # display name
    hub_id: str  # identifier for the card's `datasets:` front matter
    eval_split: str  # the split results are reported on
    faces: str  # what face crops the model trained on expects
    license: str
    url: str = ''
    config: Optional[str] = None  # model-index dataset config, tells apart e.g. AffectNet's 7- and 8-class tasks


@dataclass(frozen=True)
class FERSource:
    """Everything timm-dan knows about one data set.

    Args:
        info: Splits, class counts, official layout, citation.
        defaults: The `load_fer_dataset` options it takes, with their defaults (passed to `scan` or `generate`).
        scan: Reads the official files: `scan(root, **options) -> SourceScan` (None for generated sets).
        generate: Builds a generated set in memory: `generate(**options, cache_dir=..., splits=None) -> DatasetDict`.
        label_map: Its native classes, mapped to the canonical ones by name (None: canonical already).
        cards: Model-card entries by the key that cards name (`ModelCardInfo.datasets`, `Metric.dataset`).
    """
    info: FERDatasetInfo
    defaults: Mapping[str, Any] = field(default_factory=dict)
    scan: Optional[Callable[..., Any]] = None
    generate: Optional[Callable[..., Any]] = None
    label_map: Optional[LabelMap] = None
    cards: Mapping[str, CardEntry] = field(default_factory=dict)

    def __post_init__(self):
        if (self.scan is None) == (self.generate is None):
            raise ValueError(f'{self.info.name}: a source either scans files or generates examples (one of the two)')
