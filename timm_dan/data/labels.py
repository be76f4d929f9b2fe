"""Native label orders of the FER data sets and their maps to the canonical order (`timm_dan.LABELS`)."""

from ..models import LABELS

__all__ = ['LABELS', 'canonical_names', 'RAFDB_TO_CANONICAL', 'FER2013_TO_CANONICAL', 'FERPLUS_VOTE_TO_CANONICAL',
           'SFEW_FOLDER_TO_CANONICAL']

# RAF-DB file labels 1..7: surprise, fear, disgust, happiness, sadness, anger, neutral (index = label - 1)
RAFDB_TO_CANONICAL: tuple[int, ...] = (3, 4, 5, 1, 2, 6, 0)
# FER2013 and ExpW codes 0..6: angry, disgust, fear, happy, sad, surprise, neutral
FER2013_TO_CANONICAL: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 0)
# FERPlus vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt (then unknown, NF)
FERPLUS_VOTE_TO_CANONICAL: tuple[int, ...] = (0, 1, 3, 2, 6, 5, 4, 7)
# SFEW 2.0 class folders, matched case-insensitively, with the synonyms found in circulating copies
SFEW_FOLDER_TO_CANONICAL: dict[str, int] = {
    'neutral': 0,
    'happy': 1, 'happiness': 1,
    'sad': 2, 'sadness': 2,
    'surprise': 3, 'surprised': 3,
    'fear': 4, 'fearful': 4, 'afraid': 4,
    'disgust': 5, 'disgusted': 5,
    'angry': 6, 'anger': 6,
    'contempt': 7,
}


def canonical_names(num_classes: int) -> tuple[str, ...]:
    """The first `num_classes` canonical class names (7: without contempt, 8: all)."""
    if not 2 <= num_classes <= len(LABELS):
        raise ValueError(f'num_classes must be in 2..{len(LABELS)}, got {num_classes}')
    return LABELS[:num_classes]
