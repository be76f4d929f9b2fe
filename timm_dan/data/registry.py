"""The FER data sets timm-dan reads, collected from their source files (`sources/<name>.py`, one per data set).

A source file declares everything about its data set in one `SOURCE` (`FERSource`): splits, classes, official
layout and citation (`FERDatasetInfo`), the `load_fer_dataset` options and their defaults, the native -> canonical
label map, its reader, and what model cards say about it (`CardEntry`). A new data set is one such file, listed here.
"""
from collections.abc import Mapping

from .sources import affectnet, expw, fer2013, ferplus, rafdb, sfew, synthetic
from .sources.base import CardEntry, FERDatasetInfo, FERSource

__all__ = ['FERSource', 'FERDatasetInfo', 'CardEntry', 'SOURCES', 'FER_DATASETS', 'CARD_ENTRIES', 'SYNTHETIC_DEFAULTS']

SOURCES: Mapping[str, FERSource] = {source.info.name: source for source in (
    rafdb.SOURCE, affectnet.SOURCE, sfew.SOURCE, fer2013.SOURCE, ferplus.SOURCE, expw.SOURCE, synthetic.SOURCE,
)}
"""Every data set's source declaration, by `load_fer_dataset` name."""

FER_DATASETS: dict[str, FERDatasetInfo] = {name: source.info for name, source in SOURCES.items()}
"""Splits, classes, official layout and citation of each data set, by `load_fer_dataset` name."""

CARD_ENTRIES: dict[str, CardEntry] = {key: entry for source in SOURCES.values() for key, entry in source.cards.items()}
"""What model cards say about each data set, by the key cards name (AffectNet has 'affectnet7' and 'affectnet8')."""

SYNTHETIC_DEFAULTS = synthetic.SOURCE.defaults
"""The synthetic set's `load_fer_dataset` options and their defaults."""
