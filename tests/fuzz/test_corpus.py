"""The fuzzing corpus replayed (no atheris needed, seconds): every seed and every regression input found by
`python -m fuzz.run` gives a parsed result or the project's own error naming the file."""
from pathlib import Path

import pytest

from fuzz.targets import TARGETS

FUZZ = Path(__file__).resolve().parents[2] / 'fuzz'


def _inputs(name):
    return sorted(p for folder in ('corpus', 'regressions') for p in (FUZZ / folder / name).glob('*') if p.is_file())


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_corpus_replays_without_findings(name):
    inputs = _inputs(name)
    assert len(inputs) >= 2, f'fuzz/corpus/{name}/ needs seed inputs'
    for path in inputs:
        try:
            TARGETS[name].check(path.read_bytes())
        except Exception as e:  # a finding: name the input that reproduces it
            raise AssertionError(f'{path.relative_to(FUZZ.parent)}: {type(e).__name__}: {e}') from e


def test_every_regression_folder_is_a_target():
    folders = (FUZZ / 'regressions').iterdir() if (FUZZ / 'regressions').is_dir() else ()
    assert {p.name for p in folders if p.is_dir()} <= set(TARGETS)
