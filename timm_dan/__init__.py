"""timm-dan: DAN (Wen et al., arXiv 2109.07270) for facial expression recognition, as a timm plugin.

`import timm_dan` registers the `dan_*` models in timm: at once when timm is already imported, else right after
`import timm` runs (a one-time hook in `sys.meta_path`). Either order works for `timm.create_model('dan_...')`,
`pytest -p timm_dan` and transformers, and `import timm_dan` alone loads neither torch nor timm, so that
`timm-dan --help` and `--version` start at once. The other names are imported on first use (PEP 562).
"""
import importlib
import importlib.abc
import sys
from typing import Any

from .labels import LABELS
from .version import __version__

_LAZY = {
    'HF_HUB_NAMESPACE': 'models', 'DAN': 'models', 'DANOutput': 'models', 'DANOutputWithVA': 'models',
    'convert_official_checkpoint': 'models',
    'AffinityLoss': 'losses', 'PartitionLoss': 'losses', 'CCCLoss': 'losses', 'DANLoss': 'losses',
    'DANLossParts': 'losses',
    'FERPredictor': 'inference',  # needs OpenCV
}
_SUBPACKAGES = ('cli', 'data', 'hub', 'inference', 'labels', 'losses', 'metrics', 'models', 'precision', 'training')

__all__ = ['__version__', 'LABELS', *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f'{__name__}.{_LAZY[name]}'), name)
    elif name in _SUBPACKAGES:  # `timm_dan.losses.DANLoss` without importing the submodule first
        value = importlib.import_module(f'{__name__}.{name}')
    else:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBPACKAGES})


class _RegisterAfterTimm(importlib.abc.MetaPathFinder):
    """Finds nothing itself. When `timm` is imported, it lets the finders after it find timm, wraps that loader so
    that `timm_dan.models` (the `@register_model` entry points) is imported right after timm's `__init__` has run,
    and removes itself; the module keeps timm's own loader."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != 'timm' or self not in sys.meta_path:
            return None
        for finder in sys.meta_path[sys.meta_path.index(self) + 1:]:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, 'find_spec') else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, 'exec_module'):
                    spec.loader = _RegisteringLoader(spec.loader, self)
                return spec
        return None


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, hook: _RegisterAfterTimm):
        self.loader, self.hook = loader, hook

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # timm looks as if imported without the hook
        self.loader.exec_module(module)
        if self.hook in sys.meta_path:
            sys.meta_path.remove(self.hook)
        importlib.import_module(f'{__name__}.models')


def _register_with_timm() -> None:
    if 'timm' in sys.modules:
        importlib.import_module(f'{__name__}.models')
    elif not any(isinstance(finder, _RegisterAfterTimm) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterTimm())


_register_with_timm()
