"""Robust image input: files, folders, PIL images and arrays to RGB uint8 arrays; one clear error per bad input."""
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ['ImageLoadError', 'ImageInput', 'load_image', 'expand_inputs', 'sniff_format', 'describe_file',
           'IMAGE_EXTENSIONS', 'DEFAULT_MAX_PIXELS']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
DEFAULT_MAX_PIXELS = 100_000_000
"""Decompression-bomb guard: images with more pixels are refused before they are decoded."""

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]


class ImageLoadError(ValueError):
    """An input that could not be read as an image; the message names it and says what was expected."""


@dataclass
class ImageInput:
    """One input of a `predict` call: a name for reports, the object to load, and its path relative to the folder
    it was found in (the file name for a file given by itself), from which output files are named."""
    name: str
    source: ImageSource
    relative: str = ''

    def __post_init__(self):
        self.relative = self.relative or self.name


def expand_inputs(inputs: Union[ImageSource, Iterable[ImageSource]], include_hidden: bool = False
                  ) -> list[ImageInput]:
    """Flatten a path, folder, image, array or list of them into named inputs.

    Folders are searched recursively for image files (by extension), sorted; hidden files and folders (names
    starting with '.', such as `.thumbnails/` or macOS `._photo.jpg` files) are skipped unless `include_hidden`.
    A file named explicitly is always read, whatever its name.
    """
    if isinstance(inputs, (str, os.PathLike, Image.Image, np.ndarray)):
        inputs = [inputs]
    out = []
    for i, item in enumerate(inputs):
        if isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if path.is_dir():
                out.extend(ImageInput(str(p), p, p.relative_to(path).as_posix())
                           for p in _image_files(path, include_hidden))
            else:
                out.append(ImageInput(str(path), path, path.name))
        else:  # images, arrays, and anything else (load_image reports what it expected)
            out.append(ImageInput(f'<{type(item).__name__} {i}>', item, f'{type(item).__name__}_{i}'))
    return out


def _image_files(folder: Path, include_hidden: bool) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):  # symlinked folders are not entered (no cycles), as rglob did
        if not include_hidden:
            dirs[:] = [d for d in dirs if not d.startswith('.')]
        files += [Path(root, n) for n in names if (include_hidden or not n.startswith('.'))
                  and Path(n).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files)


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
        kind, name = sniff_format(path)
        if kind == 'video':
            raise ImageLoadError(f'{path}: looks like a video ({name}), not an image: add --video '
                                 f'(in Python: FERPredictor.predict_video)') from e
        raise ImageLoadError(f'{path}: not an image file PIL can read ({describe_file(path)})') from e
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


# ISO base media (ftyp box at byte 4): the major brand tells video containers from HEIF/AVIF still images
_FTYP_IMAGES = {b'heic': 'HEIC', b'heix': 'HEIC', b'heim': 'HEIC', b'heis': 'HEIC', b'mif1': 'HEIF',
                b'msf1': 'HEIF', b'avif': 'AVIF', b'avis': 'AVIF'}
_SIGNATURES = (  # (offset, bytes, kind, format): the files' magic numbers
    (0, b'\xff\xd8\xff', 'image', 'JPEG'), (0, b'\x89PNG\r\n\x1a\n', 'image', 'PNG'), (0, b'GIF8', 'image', 'GIF'),
    (0, b'BM', 'image', 'BMP'), (0, b'II*\x00', 'image', 'TIFF'), (0, b'MM\x00*', 'image', 'TIFF'),
    (0, b'\x1aE\xdf\xa3', 'video', 'Matroska/WebM'), (0, b'FLV\x01', 'video', 'FLV'),
    (0, b'0&\xb2u\x8ef\xcf\x11', 'video', 'ASF/WMV'), (0, b'\x00\x00\x01\xba', 'video', 'MPEG program stream'),
    (0, b'\x00\x00\x01\xb3', 'video', 'MPEG-1/2 video'), (0, b'OggS', 'video', 'Ogg'),
)


def sniff_format(path: Union[str, os.PathLike]) -> tuple[Optional[str], Optional[str]]:
    """('image' or 'video', the format) that a file's first bytes announce, or (None, None).

    Knows JPEG, PNG, GIF, BMP, TIFF, WebP, HEIF/AVIF, and the video containers MP4 / QuickTime / 3GP (an `ftyp`
    box), AVI (RIFF), Matroska / WebM (EBML), MPEG-TS, MPEG-PS, FLV, ASF / WMV and Ogg.
    """
    with open(path, 'rb') as f:
        head = f.read(400)
    if head[4:8] == b'ftyp':
        brand = head[8:12]
        if brand in _FTYP_IMAGES:
            return 'image', _FTYP_IMAGES[brand]
        return 'video', 'QuickTime MOV' if brand == b'qt  ' else '3GP' if brand.startswith(b'3g') else 'MP4'
    if head[:4] == b'RIFF':
        return {b'AVI ': ('video', 'AVI'), b'WEBP': ('image', 'WebP')}.get(head[8:12], (None, None))
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # 188-byte packets, each starting with 0x47
        return 'video', 'MPEG transport stream'
    for offset, magic, kind, name in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind, name
    return None, None


def describe_file(path: Union[str, os.PathLike]) -> str:
    """What a file that could not be read looks like: its format by signature, its start if it is text, or its
    first bytes."""
    kind, name = sniff_format(path)
    if kind is not None:
        return f'it looks like {"an image" if kind == "image" else "a video"} file ({name})'
    with open(path, 'rb') as f:
        head = f.read(64)
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f'it starts with text: {head[:32].decode("ascii")!r}'
    return f'first bytes {head[:8].hex()}'

