"""What the page shows of a prediction: messages, one panel per face, the JSON to download. No Gradio here."""
import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import cv2
import numpy as np

from ..inference.attention import annotate_image, attention_grid
from ..inference.results import FaceResult, ImageResult

__all__ = ['NO_FACE', 'FacePanel', 'face_affect', 'result_record', 'result_message', 'face_summary', 'face_panels',
           'face_picture', 'largest_face', 'annotated', 'fit_image', 'output_folder', 'write_json', 'prune_outputs']

NO_FACE = 'no face found'
"""What the page says about an image without faces (the detector finds frontal, unoccluded faces)."""

_NO_FACE_HINT = 'the detector finds frontal, unoccluded faces: try a closer, sharper or better lit photo'


@dataclass
class FacePanel:
    """One face as the page shows it: a title, the class probabilities (bars), a summary line, pictures."""
    title: str
    probs: dict[str, float]
    summary: str
    picture: np.ndarray  # the face cut from the photo
    attention: Optional[np.ndarray] = None  # the aligned face and each head's map over it, when the model has them


def face_affect(face: FaceResult) -> dict[str, float]:
    """Valence and arousal of a face, for models that predict them (attributes set and not None)."""
    values = {name: getattr(face, name, None) for name in ('valence', 'arousal')}
    return {name: float(value) for name, value in values.items() if value is not None}


def result_record(result: ImageResult, name: str) -> dict[str, Any]:
    """`result.to_dict()` under the name the user knows (not the server's upload path), with valence/arousal."""
    record = result.to_dict()
    record['file'] = name
    if record.get('error'):
        record['error'] = result.error.replace(result.file, name)
    for face, face_record in zip(result.faces, record['faces'], strict=True):
        face_record.update({k: v for k, v in face_affect(face).items() if k not in face_record})
    return record


def result_message(result: ImageResult, name: str) -> str:
    """One Markdown line: the error, 'no face found' with a hint, or how many faces were found."""
    if result.error:
        error = result.error.replace(result.file, name)
        return f'**{name}**: {error.removeprefix(f"{name}: ")}'
    if not result.faces:
        return f'**{name}**: {NO_FACE} ({_NO_FACE_HINT}).'
    count = len(result.faces)
    return f'**{name}**: {count} face{"s" if count > 1 else ""}.'


def face_summary(face: FaceResult) -> str:
    """'happy 0.96 · valence +0.31 · arousal -0.12 · box 120, 40, 90 x 90'."""
    parts = [f'**{face.label}** {face.score:.2f}']
    parts += [f'{name} {value:+.2f}' for name, value in face_affect(face).items()]
    x, y, w, h = (round(v) for v in face.box)
    parts.append(f'box {x}, {y}, {w} x {h}')
    return ' · '.join(parts)


def face_panels(result: ImageResult, name: str) -> list[FacePanel]:
    """A panel per face of `result` (predicted with `keep_images=True`; attention pictures when it has maps)."""
    panels = []
    for i, face in enumerate(result.faces):
        attention = attention_grid(face) if face.attention is not None and face.crop is not None else None
        panels.append(FacePanel(f'{name}, face {i}', dict(face.probs), face_summary(face),
                                face_picture(result.image, face), attention))
    return panels


def face_picture(image: np.ndarray, face: FaceResult, size: int = 160, margin: float = 0.2) -> np.ndarray:
    """The face's box (with a margin) cut from the image, `size` pixels high."""
    x, y, w, h = face.box
    pad = margin * max(w, h)
    top, bottom = max(0, round(y - pad)), min(image.shape[0], round(y + h + pad))
    left, right = max(0, round(x - pad)), min(image.shape[1], round(x + w + pad))
    crop = image[top:bottom, left:right]
    if crop.size == 0:
        crop = image
    return cv2.resize(crop, (max(1, round(crop.shape[1] * size / crop.shape[0])), size), interpolation=cv2.INTER_AREA)


def largest_face(result: ImageResult) -> Optional[FaceResult]:
    return max(result.faces, key=lambda f: f.box[2] * f.box[3], default=None)


def annotated(result: ImageResult, max_side: int = 1600) -> np.ndarray:
    """The photo with each face boxed, labelled and scored (`annotate_image`), at most `max_side` pixels wide."""
    return fit_image(annotate_image(result), max_side)


def fit_image(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def output_folder(root: Union[str, Path]) -> Path:
    """A new folder under `root` for one request's downloads (concurrent users never share a file)."""
    folder = Path(root) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def write_json(records: list[dict[str, Any]], path: Union[str, Path]) -> Path:
    path = Path(path)
    path.write_text(json.dumps(records, indent=1), encoding='utf-8')
    return path


def prune_outputs(root: Union[str, Path], max_age_s: float = 3600.) -> None:
    """Delete the request folders under `root` older than `max_age_s` (a long-running Space's disk)."""
    now = time.time()
    for folder in Path(root).glob('*'):
        try:
            if now - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder)
        except OSError:  # another request's folder, just removed
            pass
