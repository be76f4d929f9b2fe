"""Old names kept for one release: a module-level `__getattr__` that warns, then returns the new object."""
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ['deprecated_names']


def deprecated_names(module: str, renamed: Mapping[str, tuple[str, Any]]) -> Callable[[str], Any]:
    """A module `__getattr__` for `renamed` = {old name: (the new name to use, the new object)}."""

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f'module {module!r} has no attribute {name!r}')
        new_name, new = renamed[name]
        warnings.warn(f'{module}.{name} is deprecated and goes in the next release; use {new_name}',
                      DeprecationWarning, stacklevel=2)
        return new

    return __getattr__
