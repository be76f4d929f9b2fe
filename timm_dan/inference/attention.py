"""Pictures of predictions: annotated images (boxes, landmarks, labels) and attention-map grids per face."""
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from .results import FaceResult, ImageResult

__all__ = ['attention_grid', 'save_attention_grid', 'annotate_image', 'save_annotated']


TILE = 160
"""Smallest side of a grid tile in pixels: small model inputs are enlarged so that the maps and labels stay readable."""


def attention_grid(face: FaceResult, alpha: float = 0.5, colormap: int = cv2.COLORMAP_VIRIDIS) -> np.ndarray:
    """RGB image: the aligned face, one overlay per head, and a colour bar.

    A head's map is its spatial attention at each position of the trunk's feature map (`heads.spatial_maps`: the
    sum over the head's channels of ReLU(1x1 -> 3x3 + 1x3 + 3x1 convs); each position's features enter the head's
    pooled vector weighted by it). All heads share one colour scale, from 0 to the largest value of any head (the
    colour bar's numbers), so a flat or weak head looks flat or dark; each tile also prints its head's own
    min-max. Cells are drawn as cells (nearest neighbour): a 64 px model gives 2 x 2 maps, a 224 px one 7 x 7.
    """
    if face.attention is None or face.crop is None:
        raise ValueError('This face has no attention maps: predict with attention=True')
    crop = face.crop
    if crop.shape[0] < TILE:
        scale = TILE / crop.shape[0]
        crop = cv2.resize(crop, (round(crop.shape[1] * scale), TILE), interpolation=cv2.INTER_CUBIC)
    height, width = crop.shape[:2]
    maps = np.asarray(face.attention, dtype=np.float32)
    top = max(float(maps.max()), 0.)
    tiles = [crop]
    for head, amap in enumerate(maps):
        level = np.clip(amap / top, 0., 1.) if top > 0 else np.zeros_like(amap)
        cells = cv2.resize(level, (width, height), interpolation=cv2.INTER_NEAREST)
        heat = _colour(cells, colormap)
        tile = cv2.addWeighted(crop, 1. - alpha, heat, alpha, 0.)
        _put_text(tile, f'head {head}', (4, 14), 0.4)
        _put_text(tile, f'{_number(float(amap.min()))}-{_number(float(amap.max()))}', (4, 30), 0.4)
        tiles.append(tile)
    tiles.append(_colour_bar(height, top, colormap))
    grid = np.concatenate(tiles, axis=1)
    _put_text(grid, f'{face.label} {face.score:.2f}', (4, height - 6), 0.4)
    return grid


def _colour(level: np.ndarray, colormap: int) -> np.ndarray:
    """Levels in [0, 1] -> RGB colours of `colormap`."""
    return cv2.cvtColor(cv2.applyColorMap((level * 255 + .5).astype(np.uint8), colormap), cv2.COLOR_BGR2RGB)


def _colour_bar(height: int, top: float, colormap: int, width: int = 64, bar: int = 14) -> np.ndarray:
    """A vertical scale: the colours from `top` (upper end) to 0 (lower end), with the values at the ends and middle."""
    panel = np.full((height, width, 3), 255, dtype=np.uint8)
    margin = 8
    levels = np.linspace(1., 0., height - 2 * margin, dtype=np.float32)[:, None].repeat(bar, axis=1)
    panel[margin:height - margin, 4:4 + bar] = _colour(levels, colormap)
    for value, y in ((top, margin + 4), (top / 2, height // 2 + 4), (0., height - margin)):
        cv2.putText(panel, _number(value), (bar + 7, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def _number(value: float) -> str:
    """A short label for a map value: a whole number from 100 on, else 3 significant digits."""
    return f'{value:.0f}' if abs(value) >= 100 else f'{value:.3g}'


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
        text = f'{i}: {face.label} {face.score:.2f}{va}'
        (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, 3)
        _put_text(image, text, (max(0, min(x, image.shape[1] - text_width - 2)), max(12, y - 4)), 0.4 * thickness)
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
