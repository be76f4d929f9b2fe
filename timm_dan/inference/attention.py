"""Pictures of predictions: annotated images (boxes, landmarks, labels) and attention-map grids per face."""
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from .results import FaceResult, ImageResult

__all__ = ['attention_grid', 'save_attention_grid', 'annotate_image', 'save_annotated']


def attention_grid(face: FaceResult, alpha: float = 0.5) -> np.ndarray:
    """RGB image: the aligned face, then one overlay per head (its spatial map, upsampled, in a heat colour map)."""
    if face.attention is None or face.crop is None:
        raise ValueError('This face has no attention maps: predict with attention=True')
    crop = face.crop
    if crop.shape[0] < 160:  # small model inputs: enlarge so that the maps and labels stay readable
        scale = 160 / crop.shape[0]
        crop = cv2.resize(crop, (round(crop.shape[1] * scale), 160), interpolation=cv2.INTER_CUBIC)
    height, width = crop.shape[:2]
    tiles = [crop]
    for head, amap in enumerate(face.attention):
        amap = cv2.resize(amap.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        low, high = float(amap.min()), float(amap.max())
        amap = (amap - low) / (high - low) if high > low else np.zeros_like(amap)
        heat = cv2.cvtColor(cv2.applyColorMap((amap * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        tile = cv2.addWeighted(crop, 1. - alpha, heat, alpha, 0.)
        _put_text(tile, f'head {head}', (4, 14), 0.4)
        tiles.append(tile)
    grid = np.concatenate(tiles, axis=1)
    _put_text(grid, f'{face.label} {face.score:.2f}', (4, height - 6), 0.4)
    return grid


def save_attention_grid(face: FaceResult, path: Union[str, Path]) -> Path:
    """Write `attention_grid(face)` as a PNG."""
    return _write_rgb(attention_grid(face), path)


def annotate_image(result: ImageResult) -> np.ndarray:
    """Copy of the input (kept with `keep_images=True`) with each face's box, landmarks and label drawn on it."""
    if result.image is None:
        raise ValueError('This result holds no image: predict with keep_images=True')
    image = result.image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for i, face in enumerate(result.faces):
        x, y, w, h = (round(v) for v in face.box)
        cv2.rectangle(image, (x, y), (x + w, y + h), (0, 255, 0), thickness)
        for px, py in face.landmarks or ():
            cv2.circle(image, (round(px), round(py)), thickness + 1, (255, 0, 0), -1)
        va = f' V{face.valence:+.2f} A{face.arousal:+.2f}' if face.valence is not None else ''
        _put_text(image, f'{i}: {face.label} {face.score:.2f}{va}', (x, max(12, y - 4)), 0.4 * thickness)
    return image


def save_annotated(result: ImageResult, path: Union[str, Path]) -> Path:
    """Write `annotate_image(result)` (PNG or JPEG by the file suffix)."""
    return _write_rgb(annotate_image(result), path)


def _put_text(image: np.ndarray, text: str, origin, scale: float) -> None:
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # outlined, readable on any background
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, width, cv2.LINE_AA)


def _write_rgb(image: np.ndarray, path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f'Could not write {path} (unsupported suffix or unwritable folder)')
    return path
