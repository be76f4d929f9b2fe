"""Parsing helpers whose errors name the file and the line."""
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ...labels import LabelMap

T = TypeVar('T')


def parse(convert: Callable[[str], T], text: str, path: Path, line: int, what: str) -> T:
    """`convert(text)`, or a ValueError naming the file, line and the expected value."""
    try:
        return convert(text)
    except (TypeError, ValueError):
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
