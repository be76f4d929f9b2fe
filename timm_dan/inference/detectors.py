"""Face detectors: OpenCV YuNet (boxes + 5 landmarks), OpenCV's Haar cascade (boxes), or none (inputs are faces)."""
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import cv2
import numpy as np

__all__ = ['Detection', 'FaceDetector', 'HaarDetector', 'YuNetDetector', 'WholeImageDetector', 'create_detector',
           'keep_faces', 'yunet_model_path', 'DetectorUnavailable', 'YUNET_REPO_ID', 'YUNET_FILENAME', 'DETECTORS',
           'MIN_FACE_SCORE', 'MIN_FACE_SIZE']

_logger = logging.getLogger(__name__)

YUNET_REPO_ID = 'opencv/face_detection_yunet'
YUNET_FILENAME = 'face_detection_yunet_2023mar.onnx'
DETECTORS = ('auto', 'yunet', 'haar', 'none')

MIN_FACE_SCORE = {'yunet': 0.7, 'haar': 3.0}
"""Default lowest detector score of a face, per detector. YuNet's score is a probability (0-1). Haar's is the
level weight of the cascade's last stage (`detectMultiScale3`), unbounded: on scikit-image's astronaut drawn at
300-1250 px, her face scores 5.1-7.3 and the false boxes 0-4.2 (16 of 19 below 3); 97 % of its LFW faces score
above 3."""
MIN_FACE_SIZE = 24
"""Default smallest face (the shorter side of its box, in the input's pixels) that is classified: an expression
needs more pixels than a detector does (FER2013's faces are 48 x 48)."""


class DetectorUnavailable(RuntimeError):
    """A detector that cannot be set up. `str()` says what to do in Python terms, `for_cli()` in command-line
    terms: `template` is the message with `{haar}`, `{yunet}`, `{auto}` and `{model}` for the options and other
    fields for `values` (paths, which may hold braces)."""
    SPELLINGS = {
        'python': {'haar': 'detector="haar"', 'yunet': 'detector="yunet"', 'auto': 'detector="auto"',
                   'model': 'detector_model=PATH'},
        'cli': {'haar': '--detector haar', 'yunet': '--detector yunet', 'auto': '--detector auto',
                'model': '--detector-model PATH'},
    }

    def __init__(self, template: str, **values: Any):
        self.template, self.values = template, values
        super().__init__(template.format(**values, **self.SPELLINGS['python']))

    def for_cli(self) -> str:
        return self.template.format(**self.values, **self.SPELLINGS['cli'])


@dataclass
class Detection:
    """A face in image pixels: box (x, y, w, h), optional landmarks (5 x 2: image-left eye, image-right eye,
    nose tip, image-left and image-right mouth corners) and the detector's confidence."""
    box: np.ndarray
    landmarks: Optional[np.ndarray] = None
    score: float = 1.0


FaceDetector = Callable[[np.ndarray], list[Detection]]
"""RGB uint8 H x W x 3 image -> its faces."""


def keep_faces(faces: list[Detection], min_face_score: float = 0., min_face_size: float = 0.) -> list[Detection]:
    """The detections with a score of at least `min_face_score` and a box whose shorter side is at least
    `min_face_size` pixels, best score first."""
    kept = [f for f in faces if f.score >= min_face_score and min(float(f.box[2]), float(f.box[3])) >= min_face_size]
    return sorted(kept, key=lambda f: -f.score)


class _DownscaledDetector:
    """Runs `detect` on a copy no larger than `max_side`, maps the results back to the original pixels and keeps
    the faces that pass `min_face_score` and `min_face_size` (`keep_faces`)."""

    def __init__(self, max_side: int = 1280, min_face_score: float = 0., min_face_size: float = MIN_FACE_SIZE):
        self.max_side, self.min_face_score, self.min_face_size = max_side, min_face_score, min_face_size

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
        return keep_faces(faces, self.min_face_score, self.min_face_size)

    def detect(self, image: np.ndarray) -> list[Detection]:
        raise NotImplementedError


class HaarDetector(_DownscaledDetector):
    """OpenCV's frontal-face Haar cascade (shipped in opencv-python 4.x wheels); boxes only, no landmarks.

    `min_size` is the cascade's smallest search window (in the downscaled copy's pixels); `min_face_score` the
    lowest level weight kept (`MIN_FACE_SCORE`), `min_face_size` the smallest face in the input's pixels.
    """

    def __init__(self, cascade: str = 'haarcascade_frontalface_default.xml', scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 30, max_side: int = 1280,
                 min_face_score: float = MIN_FACE_SCORE['haar'], min_face_size: float = MIN_FACE_SIZE):
        super().__init__(max_side, min_face_score, min_face_size)
        haar_dir = getattr(getattr(cv2, 'data', None), 'haarcascades', None)
        if haar_dir is None or not hasattr(cv2, 'CascadeClassifier'):
            raise DetectorUnavailable(
                'This OpenCV ({version}) ships no Haar cascades (OpenCV 5 wheels dropped them); install '
                'opencv-python-headless<5 or use {yunet}', version=cv2.__version__)
        self.classifier = cv2.CascadeClassifier(haar_dir + cascade)
        if self.classifier.empty():
            raise DetectorUnavailable('Could not load the Haar cascade {path}', path=haar_dir + cascade)
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, image: np.ndarray) -> list[Detection]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        boxes, _, weights = self.classifier.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True,
        )
        return [Detection(np.asarray(b, dtype=np.float32), None, float(w)) for b, w in zip(boxes, weights, strict=True)]


class YuNetDetector(_DownscaledDetector):
    """OpenCV's YuNet (`cv2.FaceDetectorYN`): boxes and 5 landmarks, scores in 0-1.

    `model_path` is YuNet's ONNX file (default: the Hub's, fetched once into the HF cache); `min_face_score` is
    YuNet's own score threshold, `min_face_size` the smallest face kept, in the input's pixels.
    """

    def __init__(self, model_path: Optional[str] = None, min_face_score: float = MIN_FACE_SCORE['yunet'],
                 nms_threshold: float = 0.3, max_side: int = 1280, min_face_size: float = MIN_FACE_SIZE):
        super().__init__(max_side, min_face_score, min_face_size)
        self.model_path = str(model_path or yunet_model_path())
        if not Path(self.model_path).is_file():
            raise DetectorUnavailable('{path}: no such file (the YuNet model, {file}); give the path of the .onnx '
                                      'file with {model}, or use {haar}', path=self.model_path, file=YUNET_FILENAME)
        try:
            self.detector = cv2.FaceDetectorYN.create(self.model_path, '', (320, 320), min_face_score, nms_threshold)
        except cv2.error as e:
            raise DetectorUnavailable(
                '{path}: OpenCV could not load it as a YuNet face detector ({reason}); {model} takes {file} from '
                'the Hugging Face Hub repo {repo!r}', path=self.model_path, reason=_first_line(e),
                file=YUNET_FILENAME, repo=YUNET_REPO_ID) from e

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


def _first_line(error: BaseException) -> str:
    """An OpenCV error's reason, without the build path and error code before it."""
    line = (str(error).strip().splitlines() or [type(error).__name__])[-1].strip()
    return re.sub(r'^OpenCV\(.*?\) .*?: error: \(-?\d+:[^)]*\) ', '', line)


def create_detector(name: str = 'auto', model_path: Optional[Union[str, os.PathLike]] = None,
                    min_face_score: Optional[float] = None, min_face_size: Optional[float] = None,
                    **kwargs: Any) -> FaceDetector:
    """'yunet', 'haar', 'none', or 'auto': YuNet when `model_path` is given or its file is in the HF cache or
    downloads, else Haar.

    `min_face_score` and `min_face_size` default to the chosen detector's (`MIN_FACE_SCORE`, `MIN_FACE_SIZE`);
    'none' keeps every input whole. Raises `DetectorUnavailable` when the detector cannot be set up.
    """
    if name not in DETECTORS:
        raise ValueError(f'detector must be one of {DETECTORS}, got {name!r}')
    if model_path is not None and name not in ('yunet', 'auto'):
        raise ValueError(f'a detector model file is a YuNet .onnx: it needs detector "yunet" or "auto", not {name!r}')
    if name == 'none':
        return WholeImageDetector()
    thresholds = {k: v for k, v in (('min_face_score', min_face_score), ('min_face_size', min_face_size))
                  if v is not None}
    if name == 'haar':
        return HaarDetector(**thresholds, **kwargs)
    if model_path is not None:
        return YuNetDetector(model_path=model_path, **thresholds, **kwargs)
    path = _cached_yunet_path()
    if path is None:
        try:
            path = yunet_model_path()
        except Exception as e:  # offline, no network, Hub error
            if name == 'yunet':
                raise DetectorUnavailable(
                    '{yunet} needs {file} from the Hugging Face Hub repo {repo!r}, which is not in the cache and '
                    'could not be downloaded ({reason}). Go online once (unset HF_HUB_OFFLINE), give a local copy '
                    'of the file with {model}, or use {haar} or {auto}.',
                    file=YUNET_FILENAME, repo=YUNET_REPO_ID, reason=type(e).__name__) from e
            _announce_once(f'Face detector: Haar cascade (YuNet unavailable: {type(e).__name__}; '
                           f'landmark alignment is off, faces are square crops with margin)')
            return HaarDetector(**thresholds, **kwargs)
    if name == 'auto':
        _announce_once('Face detector: YuNet (with 5-point alignment)')
    return YuNetDetector(model_path=path, **thresholds, **kwargs)
