"""Layers import downward only: vocabulary, models, then data/losses/metrics, inference/hub, training, the CLI."""
from tests.layers import LAYERS, PACKAGE, imported_modules, layer_of


def _module_name(path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def test_every_module_imports_downward_only():
    violations = []
    for path in sorted(PACKAGE.rglob('*.py')):
        name = _module_name(path)
        if name in ('timm_dan', 'timm_dan.__main__'):  # the package's face and `python -m timm_dan`
            continue
        rank, package = layer_of(name)
        for imported in imported_modules(path) - {'timm_dan'}:
            other_rank, other_package = layer_of(imported)
            if other_package != package and other_rank >= rank:
                violations.append(f'{name} (layer {rank}) imports {imported} (layer {other_rank})')
    assert not violations, '\n'.join(violations)


def test_the_layers_cover_every_subpackage():
    top = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
           if p.suffix == '.py' or (p / '__init__.py').is_file()}
    listed = {package.split('.')[1] for layer in LAYERS for package in layer}
    assert top - {'__init__', '__main__'} <= listed, top - listed
