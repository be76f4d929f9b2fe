"""Face crops in the training geometry: 5-point similarity alignment, or a square crop with margin around a box.

Coordinates are continuous: pixel (i, j) covers [i, i + 1) x [j, j + 1), as boxes (x, y, w, h) imply.
"""
from typing import Optional

import cv2
import numpy as np

__all__ = ['ALIGNED_TEMPLATE', 'alignment_matrix', 'box_matrix', 'crop_face']

ALIGNED_TEMPLATE = np.array([
    [0.340, 0.420],  # image-left eye
    [0.660, 0.420],  # image-right eye
    [0.500, 0.590],  # nose tip
    [0.365, 0.760],  # image-left mouth corner
    [0.635, 0.760],  # image-right mouth corner
], dtype=np.float32)
"""Landmark positions in a unit square crop, chosen to resemble RAF-DB's aligned faces (whole face and chin in
frame, eyes a little above the middle). An approximation of ours, not measured from the RAF-DB files."""


def alignment_matrix(landmarks: np.ndarray, size: tuple[int, int]) -> Optional[np.ndarray]:
    """2 x 3 similarity transform (rotation, uniform scale, shift) taking 5 landmarks onto the template."""
    target = ALIGNED_TEMPLATE * np.array(size, dtype=np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), target, method=cv2.LMEDS)
    return matrix


def box_matrix(box: np.ndarray, size: tuple[int, int], margin: float = 0.2) -> np.ndarray:
    """2 x 3 scale-and-shift taking a square of side max(w, h) * (1 + margin) around the box's centre to `size`."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h, 1.) * (1. + margin)
    cx, cy = x + w / 2, y + h / 2
    sx, sy = size[0] / side, size[1] / side
    return np.array([[sx, 0., size[0] / 2 - sx * cx], [0., sy, size[1] / 2 - sy * cy]], dtype=np.float64)


def crop_face(
        image: np.ndarray,
        box: np.ndarray,
        size: tuple[int, int],
        landmarks: Optional[np.ndarray] = None,
        margin: float = 0.2,
) -> np.ndarray:
    """The face as a `size` (width, height) RGB crop: aligned by its landmarks when given, else box + margin.

    Pixels outside the image are filled by replicating the border, as a crop near the edge would be padded.
    """
    matrix = alignment_matrix(landmarks, size) if landmarks is not None else None
    if matrix is None:
        matrix = box_matrix(box, size, margin)
    return cv2.warpAffine(image, _on_pixel_centres(matrix), size, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _on_pixel_centres(matrix: np.ndarray) -> np.ndarray:
    """The same transform for OpenCV, whose pixel (i, j) sits at (i, j), not at (i + 0.5, j + 0.5) as in
    boxes and landmarks; without this, crops shift by half a pixel per scale step (and mirroring breaks)."""
    out = matrix.astype(np.float64).copy()
    out[:, 2] += out[:, :2] @ [0.5, 0.5] - 0.5
    return out
