"""Deprecated: the label vocabulary and the sources' label maps live in `timm_dan.labels` (name-based `LabelMap`s).

The old names stay importable for one release, with a `DeprecationWarning`, and their values unchanged.
"""
import warnings
from typing import Any

from .. import labels as _labels

_OLD_SFEW_FOLDERS = ('neutral', 'happy', 'happiness', 'sad', 'sadness', 'surprise', 'surprised', 'fear', 'fearful',
                     'afraid', 'disgust', 'disgusted', 'angry', 'anger', 'contempt')

_MOVED = {  # old name -> (its value, what to use instead)
    'LABELS': (lambda: _labels.LABELS, 'timm_dan.labels.LABELS'),
    'canonical_names': (lambda: _labels.canonical_names, 'timm_dan.labels.canonical_names'),
    'RAFDB_TO_CANONICAL': (lambda: _labels.RAFDB.to_canonical, 'timm_dan.labels.RAFDB.to_canonical'),
    'FER2013_TO_CANONICAL': (lambda: _labels.FER2013.to_canonical, 'timm_dan.labels.FER2013.to_canonical'),
    'FERPLUS_VOTE_TO_CANONICAL': (lambda: _labels.FERPLUS.to_canonical, 'timm_dan.labels.FERPLUS.to_canonical'),
    'SFEW_FOLDER_TO_CANONICAL': (
        lambda: {name: _labels.LABELS.index(_labels.canonical_label(name)) for name in _OLD_SFEW_FOLDERS},
        'timm_dan.labels.SFEW.index_of(folder) or timm_dan.labels.canonical_label(folder)'),
}

__all__ = list(_MOVED)


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value, instead = _MOVED[name]
    warnings.warn(f'timm_dan.data.labels.{name} is deprecated and will be removed in the next release; use {instead}',
                  DeprecationWarning, stacklevel=2)
    return value()
