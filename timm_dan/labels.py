"""The canonical label vocabulary and each FER source's native labels, mapped to it by name.

Canonical order = AffectNet's: `LABELS`; 7-class models and data sets use the first seven. Every source's native
classes are listed by their own names, in their native order (`LabelMap`); the canonical index of each follows
from its name through one table of synonyms, so that no permutation is written out by hand.

    >>> RAFDB.canonical(0)            # RAF-DB file label 1 is 'surprise'
    3
    >>> SFEW.index_of('Happiness')    # folder names, any case, with synonyms
    1
"""
from collections.abc import Iterable, Mapping

__all__ = ['LABELS', 'SYNONYMS', 'LabelMap', 'canonical_names', 'canonical_label', 'RAFDB', 'AFFECTNET', 'FER2013',
           'EXPW', 'FERPLUS', 'SFEW', 'LABEL_MAPS']

LABELS = ('neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger', 'contempt')
"""Canonical class order (AffectNet's). 7-class models use the first seven."""

SYNONYMS: Mapping[str, str] = {
    'happiness': 'happy', 'sadness': 'sad', 'surprised': 'surprise', 'fearful': 'fear', 'afraid': 'fear',
    'disgusted': 'disgust', 'angry': 'anger', 'contemptuous': 'contempt',
}
"""Other names of the canonical labels found in the data sets' files and folders (lower case)."""


def canonical_label(name: str) -> str:
    """The canonical label a native class name means (case-insensitive, synonyms accepted); KeyError otherwise."""
    key = name.strip().lower()
    key = SYNONYMS.get(key, key)
    if key not in LABELS:
        raise KeyError(f'{name!r} names no canonical label; expected one of {", ".join(LABELS)} or a synonym '
                       f'({", ".join(sorted(SYNONYMS))})')
    return key


def canonical_names(num_classes: int) -> tuple[str, ...]:
    """The first `num_classes` canonical class names (7: without contempt, 8: all)."""
    if not 2 <= num_classes <= len(LABELS):
        raise ValueError(f'num_classes must be in 2..{len(LABELS)}, got {num_classes}')
    return LABELS[:num_classes]


class LabelMap:
    """A source's native class names in their native order, and the canonical index of each (by name).

    Args:
        source: What the names come from (for messages).
        native: The native class names; position i is native index i.
        first_code: The code of native index 0 in the source's files (RAF-DB writes 1..7).
    """

    def __init__(self, source: str, native: Iterable[str], first_code: int = 0):
        self.source = source
        self.native = tuple(native)
        self.first_code = first_code
        self.to_canonical = tuple(LABELS.index(canonical_label(name)) for name in self.native)
        if len(set(self.to_canonical)) != len(self.native):
            raise ValueError(f'{source}: two native classes map to one canonical label: {self.native}')

    def __len__(self) -> int:
        return len(self.native)

    def __repr__(self) -> str:
        pairs = ', '.join(f'{n}->{LABELS[c]}' for n, c in zip(self.native, self.to_canonical, strict=True))
        return f'LabelMap({self.source}: {pairs})'

    @property
    def codes(self) -> range:
        """The label codes the source's files use."""
        return range(self.first_code, self.first_code + len(self.native))

    @property
    def meaning(self) -> str:
        """'code = name' for every code, as shown in error messages."""
        return ', '.join(f'{code} {name}' for code, name in zip(self.codes, self.native, strict=True))

    def canonical(self, native_index: int) -> int:
        """The canonical index of native index `native_index` (0-based; files' codes minus `first_code`)."""
        return self.to_canonical[native_index]

    def from_code(self, code: int) -> int:
        """The canonical index of a label code as written in the source's files."""
        return self.to_canonical[code - self.first_code]

    def index_of(self, name: str) -> int:
        """The canonical index of a native class name (case-insensitive, synonyms accepted); KeyError if unknown."""
        label = canonical_label(name)
        index = LABELS.index(label)
        if index not in self.to_canonical:
            raise KeyError(f'{self.source} has no class {name!r}; its classes: {", ".join(self.native)}')
        return index

    def native_of_canonical(self) -> tuple[int, ...]:
        """The inverse map: for each canonical index 0..K-1, the native index that holds it (K = len(self))."""
        inverse = {c: n for n, c in enumerate(self.to_canonical)}
        missing = [LABELS[c] for c in range(len(self)) if c not in inverse]
        if missing:
            raise ValueError(f'{self.source} does not cover the first {len(self)} canonical labels: no {missing}')
        return tuple(inverse[c] for c in range(len(self)))


RAFDB = LabelMap('RAF-DB', ('surprise', 'fear', 'disgust', 'happiness', 'sadness', 'anger', 'neutral'), first_code=1)
"""RAF-DB basic, `EmoLabel/list_patition_label.txt` codes 1..7 (also the class order of the authors' RAF-DB file)."""
AFFECTNET = LabelMap('AffectNet', ('neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger', 'contempt'))
"""AffectNet expression codes 0..7 (8 none, 9 uncertain, 10 no-face are not expressions); canonical already."""
FER2013 = LabelMap('FER2013', ('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'))
"""FER2013's `emotion` column, codes 0..6."""
EXPW = LabelMap('ExpW', FER2013.native)
"""ExpW's `label.lst` expression codes 0..6, in FER2013's order."""
FERPLUS = LabelMap('FERPlus', ('neutral', 'happiness', 'surprise', 'sadness', 'anger', 'disgust', 'fear', 'contempt'))
"""FERPlus's first eight vote columns (then `unknown` and `NF`, which are not expressions)."""
SFEW = LabelMap('SFEW 2.0', ('Angry', 'Disgust', 'Fear', 'Happy', 'Neutral', 'Sad', 'Surprise'))
"""SFEW 2.0's class folders, in alphabetical order (matched by name, any case, synonyms accepted)."""

LABEL_MAPS: Mapping[str, LabelMap] = {
    'rafdb': RAFDB, 'affectnet': AFFECTNET, 'fer2013': FER2013, 'expw': EXPW, 'ferplus': FERPLUS, 'sfew': SFEW,
}
"""Each data set's label map, by its `timm_dan.data.FER_DATASETS` name."""
