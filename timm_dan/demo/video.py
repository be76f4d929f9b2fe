"""A video file through the predictor: the annotated video (WebM, plays in browsers), the main face's
probabilities over time, and each analysed frame's record."""
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import cv2

from ..inference.io import ImageLoadError
from ..inference.predictor import FERPredictor
from .views import annotated, largest_face, result_record

__all__ = ['VideoAnalysis', 'analyse_video', 'MAX_FRAMES']

MAX_FRAMES = 1800
"""Frames analysed per video at most (a minute at 30 frames/s); the page says when a video was cut short."""

_MAX_SIDE = 960  # the annotated video's larger side: quick to encode, enough to read the labels


@dataclass
class VideoAnalysis:
    records: list[dict[str, Any]] = field(default_factory=list)  # one per analysed frame (`result_record`)
    timeline: list[tuple[float, str, float]] = field(default_factory=list)  # (seconds, label, probability)
    video: Optional[Path] = None  # the annotated frames, WebM (VP8)
    frames_with_faces: int = 0
    truncated: bool = False

    @property
    def message(self) -> str:
        n = len(self.records)
        text = (f'{n} frame{"s" if n != 1 else ""} analysed, {self.frames_with_faces} with a face'
                + (f'; stopped after {MAX_FRAMES} frames (analyse every N-th frame to cover more)'
                   if self.truncated else '') + '.')
        return text


def analyse_video(predictor: FERPredictor, path: str, name: str, output: Path, every: int = 1,
                  progress: Optional[Callable[[int, int], None]] = None) -> VideoAnalysis:
    """Predict every `every`-th frame of the file at `path` (shown to the user as `name`); write the annotated
    frames to `output` (.webm). `progress(done, total)` is called after each frame. Raises `ImageLoadError`
    when the file is no video OpenCV can decode."""
    total, fps = _stream_info(path)
    total = min(MAX_FRAMES, -(-total // every))
    analysis = VideoAnalysis()
    writer = None
    try:
        for frame in _frames(predictor, path, name, every):
            if len(analysis.records) == MAX_FRAMES:
                analysis.truncated = True
                break
            record = result_record(frame, name)
            analysis.records.append(record)
            face = largest_face(frame)
            if face is not None:
                analysis.frames_with_faces += 1
                analysis.timeline += [(round(frame.time, 3), label, p) for label, p in face.probs.items()]
            picture = cv2.cvtColor(annotated(frame, _MAX_SIDE), cv2.COLOR_RGB2BGR)
            if writer is None:
                output.parent.mkdir(parents=True, exist_ok=True)
                size = (picture.shape[1], picture.shape[0])
                writer = cv2.VideoWriter(str(output), cv2.VideoWriter_fourcc(*'VP80'), max(fps / every, 1.), size)
            writer.write(picture if picture.shape[1::-1] == size else cv2.resize(picture, size))
            if progress is not None:
                progress(len(analysis.records), max(total, len(analysis.records)))
    finally:
        if writer is not None:
            writer.release()
    if not analysis.records:
        raise ImageLoadError(f'{name}: no frame could be decoded (a corrupt file, or a codec OpenCV cannot read)')
    analysis.video = output
    return analysis


def _frames(predictor: FERPredictor, path: str, name: str, every: int):
    for frame in predictor.predict_video(path, every=every, keep_images=True):
        if frame.error:  # the message names the upload's path on the server: name the user's file
            raise ImageLoadError(frame.error.replace(str(path), name))
        yield frame


def _stream_info(path: str) -> tuple[int, float]:
    """The frame count (0 when the container does not say) and frame rate (25 when it does not) of a video."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return 0, 25.
        count, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    return max(0, count), fps if 0 < fps < 1000 else 25.
