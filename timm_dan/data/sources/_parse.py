"""Parsing helpers whose errors name the file and the line."""
import csv
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

import numpy as np

from ...labels import LabelMap

T = TypeVar('T')


def parse(convert: Callable[[str], T], text: str, path: Path, line: int, what: str) -> T:
    """`convert(text)`, or a ValueError naming the file, line and the expected value."""
    try:
        return convert(text)
    except (TypeError, ValueError, OverflowError):  # OverflowError: numpy's int64 and a 20-digit number
        raise ValueError(f'{path}:{line}: expected {what}, got {text!r}') from None


def code(text: str, path: Path, line: int, valid: Sequence[int], meaning: str) -> int:
    """An integer label code from `valid`; anything else is an error naming the file and line."""
    value = parse(int, text, path, line, f'an integer label code ({meaning})')
    if value not in valid:
        raise ValueError(f'{path}:{line}: unknown label code {value} (valid: {min(valid)}..{max(valid)} = {meaning})')
    return value


def label_code(text: str, path: Path, line: int, labels: LabelMap) -> int:
    """A label code of `labels`' source (its `codes`, named in the error by its native class names)."""
    return code(text, path, line, labels.codes, ', '.join(labels.native))


def _undecodable(path: Path) -> tuple[int, UnicodeDecodeError]:
    """The first line of `path` that is not UTF-8, and why."""
    with open(path, 'rb') as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode('utf-8')
            except UnicodeDecodeError as e:
                return number, e
    raise AssertionError(f'{path} decodes')  # only called after decoding failed


def _not_text(path: Path) -> ValueError:
    line, e = _undecodable(path)
    return ValueError(f'{path}:{line}: not UTF-8 text ({e.reason}: byte 0x{e.object[e.start]:02x})')


def text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a byte-order mark and CR LF line ends allowed), numbered as the file's
    lines are (split at newlines only); bytes that are not UTF-8 are a ValueError naming the file and line."""
    try:
        text = path.read_bytes().decode('utf-8-sig')
    except UnicodeDecodeError:
        raise _not_text(path) from None
    lines = text.split('\n')
    if lines[-1] == '':
        lines.pop()
    return [line[:-1] if line.endswith('\r') else line for line in lines]


def csv_lines(f: TextIO, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each row of the csv file `f` (opened from `path` as UTF-8 text), streamed; bytes that
    are not UTF-8 or broken csv (a NUL, an over-long field) are a ValueError naming the file and line."""
    reader = csv.reader(f)
    try:
        for row in reader:
            yield reader.line_num, row
    except UnicodeDecodeError:
        raise _not_text(path) from None
    except csv.Error as e:
        raise ValueError(f'{path}:{reader.line_num + 1}: not valid CSV ({e})') from None


NPY_MAX_VALUES = 4096  # an annotation: one code, a valence, an arousal, 68 landmarks
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npy(path: Path, max_values: int = NPY_MAX_VALUES) -> np.ndarray:
    """A small numeric or text array saved with `numpy.save`, checked from its header before anything is read:
    a supported format version, numbers or text (never objects, never unpickled), at most `max_values` values, and
    exactly as many bytes as the header announces. Anything else is a ValueError naming the file."""
    with open(path, 'rb') as f:
        try:
            version = np.lib.format.read_magic(f)
            if version not in _NPY_HEADERS:
                raise ValueError(f'unsupported .npy format version {version}')
            shape, fortran_order, dtype = _NPY_HEADERS[version](f)
        except Exception as e:  # noqa: BLE001 - numpy parses the header text with tokenize and literal_eval: a
            # lying header raises ValueError, EOFError, SyntaxError, TypeError, tokenize.TokenError, RecursionError...
            raise ValueError(f'{path}: not a .npy file written by numpy.save ({e})') from None
        if dtype.kind not in 'biufUS':
            raise ValueError(f'{path}: expected numbers or text, got dtype {dtype}')
        count = int(np.prod(shape, dtype=np.float64))
        if count > max_values:
            raise ValueError(f'{path}: {count:,} values of shape {shape}: more than the {max_values:,} an '
                             f'annotation holds')
        remaining = path.stat().st_size - f.tell()
        if remaining != count * dtype.itemsize:
            raise ValueError(f'{path}: the header announces {count * dtype.itemsize:,} bytes of data, the file holds '
                             f'{remaining:,}')
        raw = f.read(remaining)
    if dtype.kind == 'U':  # UTF-32 code units: beyond U+10FFFF numpy cannot make them a str
        order = dtype.byteorder if dtype.byteorder in '<>' else '='
        if (np.frombuffer(raw, dtype=np.dtype('u4').newbyteorder(order)) > 0x10FFFF).any():
            raise ValueError(f'{path}: text with characters beyond U+10FFFF')
    data = np.frombuffer(raw, dtype=dtype, count=count)
    return data.reshape(shape[::-1]).T if fortran_order else data.reshape(shape)
