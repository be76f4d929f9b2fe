"""The bottom vocabulary: canonical labels, synonyms, and each source's name-based map (FACTS.md's remaps)."""
import pytest

from timm_dan.labels import (
    AFFECTNET,
    EXPW,
    FER2013,
    FERPLUS,
    LABEL_MAPS,
    LABELS,
    RAFDB,
    SFEW,
    LabelMap,
    canonical_label,
    canonical_names,
)


def test_canonical_order_is_affectnets():
    assert LABELS == ('neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger', 'contempt')
    assert canonical_names(7) == LABELS[:7]
    with pytest.raises(ValueError, match='num_classes must be in 2..8'):
        canonical_names(9)


@pytest.mark.parametrize('label_map, expected', [  # native index -> canonical index, as the data sets publish them
    (RAFDB, (3, 4, 5, 1, 2, 6, 0)),
    (AFFECTNET, (0, 1, 2, 3, 4, 5, 6, 7)),
    (FER2013, (6, 5, 4, 1, 2, 3, 0)),
    (EXPW, (6, 5, 4, 1, 2, 3, 0)),
    (FERPLUS, (0, 1, 3, 2, 6, 5, 4, 7)),
    (SFEW, (6, 5, 4, 1, 0, 2, 3)),
])
def test_maps_follow_from_the_names(label_map, expected):
    assert label_map.to_canonical == expected
    for native, canonical in zip(label_map.native, expected, strict=True):
        assert canonical_label(native) == LABELS[canonical]


def test_codes_and_inverse():
    assert list(RAFDB.codes) == [1, 2, 3, 4, 5, 6, 7] and RAFDB.from_code(1) == LABELS.index('surprise')
    assert RAFDB.meaning.startswith('1 surprise, 2 fear')
    inverse = RAFDB.native_of_canonical()
    assert [RAFDB.native[i] for i in inverse] == ['neutral', 'happiness', 'sadness', 'surprise', 'fear', 'disgust',
                                                   'anger']
    assert set(LABEL_MAPS) == {'rafdb', 'affectnet', 'fer2013', 'expw', 'ferplus', 'sfew'}


def test_names_any_case_with_synonyms_and_clear_errors():
    assert SFEW.index_of('HAPPINESS') == 1 and SFEW.index_of(' Angry ') == 6
    with pytest.raises(KeyError, match="SFEW 2.0 has no class 'contempt'"):
        SFEW.index_of('contempt')
    with pytest.raises(KeyError, match="'joy' names no canonical label"):
        canonical_label('joy')
    with pytest.raises(ValueError, match='two native classes map to one canonical label'):
        LabelMap('broken', ('happy', 'happiness'))
