"""Old import paths that keep working for one release, with a DeprecationWarning that names the new one."""
import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved_names(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `module`: `moved` maps each old name to its new home, 'package.module:name'."""

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f'module {module!r} has no attribute {name!r}')
        target_module, _, target_name = moved[name].partition(':')
        warnings.warn(f'{module}.{name} is deprecated and goes in the next release: use '
                      f'{target_module}.{target_name}', DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(target_module), target_name)

    return __getattr__
