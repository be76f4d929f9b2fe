"""Face detectors: OpenCV YuNet (boxes + 5 landmarks), OpenCV's Haar cascade (boxes), or none (inputs are faces)."""
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

__all__ = ['Detection', 'FaceDetector', 'HaarDetector', 'YuNetDetector', 'WholeImageDetector', 'create_detector',
           'yunet_model_path', 'YUNET_REPO_ID', 'YUNET_FILENAME', 'DETECTORS']

_logger = logging.getLogger(__name__)

YUNET_REPO_ID = 'opencv/face_detection_yunet'
YUNET_FILENAME = 'face_detection_yunet_2023mar.onnx'
DETECTORS = ('auto', 'yunet', 'haar', 'none')


@dataclass
class Detection:
    """A face in image pixels: box (x, y, w, h), optional landmarks (5 x 2: image-left eye, image-right eye,
    nose tip, image-left and image-right mouth corners) and the detector's confidence."""
    box: np.ndarray
    landmarks: Optional[np.ndarray] = None
    score: float = 1.0


FaceDetector = Callable[[np.ndarray], list[Detection]]
"""RGB uint8 H x W x 3 image -> its faces."""


class _DownscaledDetector:
    """Runs `detect` on a copy no larger than `max_side` and maps the results back to the original pixels."""

    def __init__(self, max_side: int = 1280):
        self.max_side = max_side

    def __call__(self, image: np.ndarray) -> list[Detection]:
        scale = min(1., self.max_side / max(image.shape[:2]))
        if scale < 1.:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        faces = self.detect(image)
        for face in faces:
            face.box = face.box / scale
            if face.landmarks is not None:
                face.landmarks = face.landmarks / scale
        return sorted(faces, key=lambda f: -f.score)

    def detect(self, image: np.ndarray) -> list[Detection]:
        raise NotImplementedError


class HaarDetector(_DownscaledDetector):
    """OpenCV's frontal-face Haar cascade (shipped in opencv-python 4.x wheels); boxes only, no landmarks."""

    def __init__(self, cascade: str = 'haarcascade_frontalface_default.xml', scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 30, max_side: int = 1280):
        super().__init__(max_side)
        haar_dir = getattr(getattr(cv2, 'data', None), 'haarcascades', None)
        if haar_dir is None or not hasattr(cv2, 'CascadeClassifier'):
            raise RuntimeError(
                f'This OpenCV ({cv2.__version__}) ships no Haar cascades (OpenCV 5 wheels dropped them); install '
                f'opencv-python-headless<5 or use detector="yunet"'
            )
        self.classifier = cv2.CascadeClassifier(haar_dir + cascade)
        if self.classifier.empty():
            raise RuntimeError(f'Could not load the Haar cascade {haar_dir + cascade}')
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, image: np.ndarray) -> list[Detection]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        boxes, _, weights = self.classifier.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True,
        )
        return [Detection(np.asarray(b, dtype=np.float32), None, float(w)) for b, w in zip(boxes, weights, strict=True)]


class YuNetDetector(_DownscaledDetector):
    """OpenCV's YuNet (`cv2.FaceDetectorYN`): boxes and 5 landmarks. `model_path` defaults to the Hub file."""

    def __init__(self, model_path: Optional[str] = None, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 max_side: int = 1280):
        super().__init__(max_side)
        self.model_path = model_path or yunet_model_path()
        self.detector = cv2.FaceDetectorYN.create(self.model_path, '', (320, 320), score_threshold, nms_threshold)

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        self.detector.setInputSize((width, height))
        _, faces = self.detector.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if faces is None:
            return []
        return [Detection(f[:4].astype(np.float32), f[4:14].reshape(5, 2).astype(np.float32), float(f[14]))
                for f in faces]


class WholeImageDetector:
    """detector='none': every input is one face filling the image."""

    def __call__(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        return [Detection(np.array([0, 0, width, height], dtype=np.float32))]


def yunet_model_path(local_files_only: bool = False) -> str:
    """Path of YuNet's ONNX file, fetched once from the Hub (`opencv/face_detection_yunet`, MIT) into the HF cache."""
    from huggingface_hub import hf_hub_download
    return hf_hub_download(YUNET_REPO_ID, YUNET_FILENAME, local_files_only=local_files_only)


def _cached_yunet_path() -> Optional[str]:
    from huggingface_hub import try_to_load_from_cache
    path = try_to_load_from_cache(YUNET_REPO_ID, YUNET_FILENAME)
    return path if isinstance(path, str) else None


_announced = set()


def _announce_once(message: str) -> None:
    if message not in _announced:
        _announced.add(message)
        _logger.warning(message)


def create_detector(name: str = 'auto', **kwargs) -> FaceDetector:
    """'yunet', 'haar', 'none', or 'auto': YuNet when its file is in the HF cache or downloads, else Haar."""
    if name == 'yunet':
        try:
            return YuNetDetector(**kwargs)
        except Exception as e:
            if isinstance(e, cv2.error):
                raise
            raise RuntimeError(
                f'detector="yunet" needs {YUNET_FILENAME} from the Hugging Face Hub repo {YUNET_REPO_ID!r}, which '
                f'is not in the cache and could not be downloaded ({type(e).__name__}). Go online once (unset '
                f'HF_HUB_OFFLINE), or use detector="haar" or "auto".'
            ) from e
    if name == 'haar':
        return HaarDetector(**kwargs)
    if name == 'none':
        return WholeImageDetector()
    if name != 'auto':
        raise ValueError(f'detector must be one of {DETECTORS}, got {name!r}')
    path = _cached_yunet_path()
    if path is None:
        try:
            path = yunet_model_path()
        except Exception as e:  # offline, no network, Hub error: Haar is the fallback
            _announce_once(f'Face detector: Haar cascade (YuNet unavailable: {type(e).__name__}; '
                           f'landmark alignment is off, faces are square crops with margin)')
            return HaarDetector(**kwargs)
    _announce_once('Face detector: YuNet (with 5-point alignment)')
    return YuNetDetector(model_path=path, **kwargs)
