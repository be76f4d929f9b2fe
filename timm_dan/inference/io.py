"""Robust image input: files, folders, PIL images and arrays to RGB uint8 arrays; one clear error per bad input."""
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ['ImageLoadError', 'ImageInput', 'load_image', 'expand_inputs', 'IMAGE_EXTENSIONS', 'DEFAULT_MAX_PIXELS']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
DEFAULT_MAX_PIXELS = 100_000_000
"""Decompression-bomb guard: images with more pixels are refused before they are decoded."""

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]


class ImageLoadError(ValueError):
    """An input that could not be read as an image; the message names it and says what was expected."""


@dataclass
class ImageInput:
    """One input of a `predict` call: a name for reports and the object to load."""
    name: str
    source: ImageSource


def expand_inputs(inputs: Union[ImageSource, Iterable[ImageSource]]) -> list[ImageInput]:
    """Flatten a path, folder, image, array or list of them into named inputs (folders: image files, sorted)."""
    if isinstance(inputs, (str, os.PathLike, Image.Image, np.ndarray)):
        inputs = [inputs]
    out = []
    for i, item in enumerate(inputs):
        if isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if path.is_dir():
                files = sorted(p for p in path.rglob('*') if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
                out.extend(ImageInput(str(p), p) for p in files)
            else:
                out.append(ImageInput(str(path), path))
        else:  # images, arrays, and anything else (load_image reports what it expected)
            out.append(ImageInput(f'<{type(item).__name__} {i}>', item))
    return out


def load_image(source: Any, color: str = 'rgb', max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load any supported input as an H x W x 3 uint8 RGB array.

    Files and PIL images are EXIF-transposed and converted from grayscale, RGBA/LA (over white), palette,
    CMYK and 16-bit modes. Arrays are H x W, H x W x 1, H x W x 3 or H x W x 4, uint8 or float in [0, 1];
    `color` says whether their channels are 'rgb' or 'bgr' (OpenCV). Raises `ImageLoadError`.
    """
    if color not in ('rgb', 'bgr'):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, color)
    if isinstance(source, Image.Image):
        _check_size(source.size, max_pixels, 'the image')
        return _pil_to_rgb(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ImageLoadError(f'Unsupported input type {type(source).__name__}: expected a path, PIL image or array')
    path = Path(source)
    if not path.is_file():
        raise ImageLoadError(f'{path}: no such file')
    if path.stat().st_size == 0:
        raise ImageLoadError(f'{path}: the file is empty (0 bytes)')
    max_before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own guard below reports the size instead of PIL's warning
    try:
        with Image.open(path) as img:
            _check_size(img.size, max_pixels, str(path))
            return _pil_to_rgb(img)
    except UnidentifiedImageError as e:
        raise ImageLoadError(f'{path}: not an image file PIL can read ({_describe_head(path)})') from e
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, ImageLoadError):
            raise
        raise ImageLoadError(f'{path}: truncated or corrupt image ({e})') from e
    finally:
        Image.MAX_IMAGE_PIXELS = max_before


def _check_size(size, max_pixels: Optional[int], name: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageLoadError(f'{name}: image has no pixels ({width}x{height})')
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            f'{name}: {width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} '
            f'(decompression-bomb guard); pass a larger max_pixels if the image is trusted'
        )


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'F'):
        values = np.asarray(img, dtype=np.float32)
        top = 65535. if img.mode.startswith('I;16') or values.max() > 255 else 255.
        img = Image.fromarray(np.clip(values / top * 255. + .5, 0, 255).astype(np.uint8))
    if img.mode == 'P' and 'transparency' in img.info:
        img = img.convert('RGBA')
    if img.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
        background = Image.new('RGBA', img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert('RGBA'))
    return np.asarray(img.convert('RGB'))


def _array_to_rgb(array: np.ndarray, color: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
        raise ImageLoadError(f'array of shape {array.shape}: expected H x W, H x W x 1, H x W x 3 or H x W x 4')
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ImageLoadError(f'array of dtype {array.dtype}: expected uint8, or float in [0, 1]')
        array = (np.clip(array, 0., 1.) * 255. + .5).astype(np.uint8)
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[..., None], 3, axis=2))
    if array.shape[2] == 4:
        alpha = array[..., 3:].astype(np.float32) / 255.
        array = (array[..., :3] * alpha + 255. * (1. - alpha) + .5).astype(np.uint8)
    return np.ascontiguousarray(array[..., ::-1] if color == 'bgr' else array[..., :3])


def _describe_head(path: Path) -> str:
    head = path.read_bytes()[:64]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f'it starts with text: {head[:32].decode("ascii")!r}'
    return f'first bytes {head[:8].hex()}'

