"""The package's layers, and the timm_dan modules a file imports: what tests/test_layers.py checks."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'timm_dan'

LAYERS = (
    ('timm_dan.labels', 'timm_dan.precision', 'timm_dan.cpu', 'timm_dan._deprecation', 'timm_dan.version'),
    ('timm_dan.models',),
    ('timm_dan.data', 'timm_dan.losses', 'timm_dan.metrics'),
    ('timm_dan.inference', 'timm_dan.hub'),
    ('timm_dan.training',),
    ('timm_dan.demo',),
    ('timm_dan.cli',),
)
"""Bottom first: a module imports its own package and the layers below it only (docs/architecture.md)."""
BOTTOM = set(LAYERS[0])


def layer_of(module: str) -> tuple[int, str]:
    """(rank, the layer's package) of a timm_dan module."""
    for rank, packages in enumerate(LAYERS):
        for package in packages:
            if module == package or module.startswith(package + '.'):
                return rank, package
    raise KeyError(f'{module} is in no layer of tests/layers.py')


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the timm_dan modules a file imports (relative imports resolved)."""
    package = '.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit('.', node.level - 1)[0] if node.level else ''
            if node.module:
                names.add('.'.join(filter(None, [base, node.module])))
            else:  # `from .. import labels`: the modules named
                names.update(f'{base}.{alias.name}' for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith('timm_dan.') or name == 'timm_dan'}
