"""Old import paths that keep working for one release, with a DeprecationWarning that names the new one."""
import functools
import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Union

Moved = Union[str, tuple[Callable[[], Any], str]]
"""Where an old name went: 'package.module:name' (or ':name.attribute'), or (a function giving the value, what to
use instead) for a value that no longer exists as such."""


def moved_names(module: str, moved: Mapping[str, Moved]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `module` that resolves each old name of `moved` and warns."""

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f'module {module!r} has no attribute {name!r}')
        target = moved[name]
        if isinstance(target, str):
            target_module, _, path = target.partition(':')
            value = functools.reduce(getattr, path.split('.'), importlib.import_module(target_module))
            instead = f'{target_module}.{path}'
        else:
            make, instead = target
            value = make()
        warnings.warn(f'{module}.{name} is deprecated and goes in the next release: use {instead}',
                      DeprecationWarning, stacklevel=2)
        return value

    return __getattr__
