"""Prediction results: per face, per image, per video frame; `to_dict()` gives the JSON layout of `timm-dan predict`."""
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = ['FaceResult', 'ImageResult', 'FrameResult']


@dataclass
class FaceResult:
    """One face: where it is, what the model says, and (when asked) where each head looked."""
    box: tuple[float, float, float, float]  # x, y, w, h in the original image's pixels
    label: str
    score: float
    probs: dict[str, float]  # label name -> probability, in the model's class order
    landmarks: Optional[list[tuple[float, float]]] = None  # 5 points, when the detector gives them
    detection_score: float = 1.0  # the detector's: YuNet 0-1, Haar a cascade level weight, 1.0 for detector 'none'
    attention: Optional[np.ndarray] = None  # H x h x w spatial maps of the heads, when requested
    crop: Optional[np.ndarray] = None  # the aligned RGB face the model saw, kept with the attention maps
    valence: Optional[float] = None  # in [-1, 1] (unpleasant .. pleasant), for a model with a valence/arousal head
    arousal: Optional[float] = None  # in [-1, 1] (calm .. excited)
    logits: Optional[dict[str, float]] = None  # label name -> raw logit, before the temperature and the softmax

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probs.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self) -> dict[str, Any]:
        out = {
            'box': [round(float(v), 2) for v in self.box],
            'landmarks': None if self.landmarks is None else [[round(float(x), 2), round(float(y), 2)]
                                                              for x, y in self.landmarks],
            'detection_score': round(float(self.detection_score), 4),
            'label': self.label,
            'score': float(self.score),
            'probs': {name: float(p) for name, p in self.probs.items()},
        }
        out.update(self._affect_dict())
        return out

    def _affect_dict(self) -> dict[str, Any]:
        """Valence and arousal, for `to_dict`, when the model predicts them (the raw logits stay in Python)."""
        return {} if self.valence is None else {'valence': float(self.valence), 'arousal': float(self.arousal)}


@dataclass
class ImageResult:
    """One input: its faces (possibly none), or the reason it could not be read (`error`)."""
    file: str
    faces: list[FaceResult] = field(default_factory=list)
    error: Optional[str] = None
    size: Optional[tuple[int, int]] = None  # width, height after EXIF rotation
    image: Optional[np.ndarray] = field(default=None, repr=False)  # RGB pixels, when `keep_images=True`

    def to_dict(self) -> dict[str, Any]:
        return {'file': self.file, 'faces': [f.to_dict() for f in self.faces], 'error': self.error}


@dataclass
class FrameResult(ImageResult):
    """One video frame: its index in the stream and its time in seconds."""
    frame: int = 0
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(super().to_dict(), frame=self.frame, time=round(self.time, 4))
