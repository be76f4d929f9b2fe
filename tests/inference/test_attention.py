"""The attention grid: one colour scale for all heads, a colour bar, cells drawn as cells."""
import cv2
import numpy as np
import pytest

from timm_dan.inference.attention import TILE, attention_grid
from timm_dan.inference.results import FaceResult


def _face(maps: np.ndarray) -> FaceResult:
    crop = np.full((64, 64, 3), 128, dtype=np.uint8)  # a flat grey "face": the overlay colours are easy to read
    return FaceResult((0., 0., 64., 64.), 'happy', 0.9, {'happy': 0.9}, attention=maps, crop=crop)


def _colour(level: float) -> np.ndarray:
    """What the grid draws for `level` in [0, 1]: viridis, blended half and half over the grey crop."""
    heat = cv2.applyColorMap(np.array([[round(level * 255)]], dtype=np.uint8), cv2.COLORMAP_VIRIDIS)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)[0, 0].astype(float)
    return (heat + 128.) / 2


@pytest.fixture
def grid():
    """4 heads of 2 x 2 maps (a 64 px model): head 0 peaks at 10 in its lower-left cell, 1 elsewhere; head 1 is
    flat at 1; head 2 flat at 5; head 3 is all 0."""
    maps = np.ones((4, 2, 2), dtype=np.float32)
    maps[0, 1, 0] = 10.
    maps[2] = 5.
    maps[3] = 0.
    return attention_grid(_face(maps))


def _cell(grid, head, row, col):
    """The pixel in the middle of a cell of a head's tile (tiles after the face, TILE wide)."""
    half = TILE // 2
    return grid[row * half + half // 2 + 20, (head + 1) * TILE + col * half + half // 2].astype(float)


def test_one_colour_scale_for_all_heads(grid):
    assert grid.shape == (TILE, 5 * TILE + 64, 3)
    np.testing.assert_allclose(_cell(grid, 0, 1, 0), _colour(1.0), atol=2)  # the peak: the top of the scale
    for head, row, col in ((0, 0, 0), (0, 0, 1), (0, 1, 1), (1, 0, 0), (1, 1, 1)):  # value 1 = 0.1 of the top
        np.testing.assert_allclose(_cell(grid, head, row, col), _colour(0.1), atol=2)
    np.testing.assert_allclose(_cell(grid, 2, 1, 1), _colour(0.5), atol=2)  # a flat 5 is not as hot as the peak
    np.testing.assert_allclose(_cell(grid, 3, 0, 0), _colour(0.0), atol=2)


def test_tiny_maps_are_drawn_as_cells(grid):
    half = TILE // 2
    tile = grid[40:, TILE:2 * TILE].astype(int)  # head 0 below its labels
    lower_left = tile[half - 40 + 2:, 2:half - 2]
    assert (np.abs(lower_left - lower_left[0, 0]).max(axis=2) <= 1).all()  # one colour over the whole cell
    assert np.abs(tile[half - 40 + 2, half - 3] - tile[half - 40 + 2, half + 2]).max() > 50  # a sharp edge


def test_colour_bar_runs_from_the_top_value_to_zero(grid):
    bar = grid[:, 5 * TILE:]
    column = bar[8:TILE - 8, 4 + 7].astype(float)  # the middle of the bar strip
    np.testing.assert_allclose(column[0], _colour(1.0) * 2 - 128, atol=3)  # unblended: the colour map itself
    np.testing.assert_allclose(column[-1], _colour(0.0) * 2 - 128, atol=3)
    assert (bar[:, 4 + 14 + 2:] < 128).any()  # the numbers are written beside it


def test_no_maps_is_a_clear_error():
    face = _face(None)
    with pytest.raises(ValueError, match='predict with attention=True'):
        attention_grid(face)
