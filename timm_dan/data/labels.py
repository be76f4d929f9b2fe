"""Deprecated: the label vocabulary and the sources' label maps live in `timm_dan.labels` (name-based `LabelMap`s).

The old names stay importable for one release, with a `DeprecationWarning`, and their values unchanged.
"""
from .. import labels as _labels
from .._deprecation import moved_names

_OLD_SFEW_FOLDERS = ('neutral', 'happy', 'happiness', 'sad', 'sadness', 'surprise', 'surprised', 'fear', 'fearful',
                     'afraid', 'disgust', 'disgusted', 'angry', 'anger', 'contempt')

__getattr__ = moved_names(__name__, {
    'LABELS': 'timm_dan.labels:LABELS',
    'canonical_names': 'timm_dan.labels:canonical_names',
    'RAFDB_TO_CANONICAL': 'timm_dan.labels:RAFDB.to_canonical',
    'FER2013_TO_CANONICAL': 'timm_dan.labels:FER2013.to_canonical',
    'FERPLUS_VOTE_TO_CANONICAL': 'timm_dan.labels:FERPLUS.to_canonical',
    'SFEW_FOLDER_TO_CANONICAL': (
        lambda: {name: _labels.LABELS.index(_labels.canonical_label(name)) for name in _OLD_SFEW_FOLDERS},
        'timm_dan.labels.SFEW.index_of(folder) or timm_dan.labels.canonical_label(folder)'),
})
