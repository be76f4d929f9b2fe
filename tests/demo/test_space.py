"""The web demo as a Hugging Face Space: the folder `timm-dan hub space` writes runs from itself (its own copy of
timm_dan, its own weights), says what the Gradio SDK needs, and uploads in one commit (no network: a fake HfApi)."""
import importlib.metadata
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from huggingface_hub import SpaceCard
from packaging.requirements import Requirement

from tests.demo.conftest import free_port
from timm_dan.cli import main
from timm_dan.demo.space import PACKAGE_DIR, push_space, write_space_folder


@pytest.fixture(scope='module')
def space(small_model_dir, tmp_path_factory):
    return write_space_folder(tmp_path_factory.mktemp('space') / 'space', model=f'local-dir:{small_model_dir}')


def test_space_folder_has_what_the_gradio_sdk_needs(space, small_model_dir, repo_root):
    import gradio
    card = SpaceCard.load(space / 'README.md')
    assert card.data.sdk == 'gradio' and card.data.sdk_version == gradio.__version__
    assert card.data.app_file == 'app.py' and card.data.python_version == f'{sys.version_info[0]}.{sys.version_info[1]}'
    assert len(card.data.short_description) <= 60 and 'its own weights in `model/`' in card.text
    assert (space / 'app.py').read_text() == (PACKAGE_DIR / 'demo' / 'space_app.py').read_text()
    lines = [line for line in (space / 'requirements.txt').read_text().splitlines() if not line.startswith('#')]
    assert lines[0].startswith('--extra-index-url https://download.pytorch.org/whl/cpu')
    pinned = {r.name.lower(): r for r in map(Requirement, lines[1:])}
    tomllib = pytest.importorskip('tomllib')  # Python 3.11+
    wanted = tomllib.loads((repo_root / 'pyproject.toml').read_text())['project']['dependencies']
    for requirement in map(Requirement, wanted):  # every dependency, at the installed version, inside the range
        version = importlib.metadata.version(requirement.name)
        assert str(pinned[requirement.name.lower()].specifier) == f'=={version}'
        assert requirement.specifier.contains(version)
    assert 'gradio' not in pinned  # the SDK brings its own
    copied = {p.relative_to(space / 'timm_dan') for p in (space / 'timm_dan').rglob('*.py')}
    assert copied == {p.relative_to(PACKAGE_DIR) for p in PACKAGE_DIR.rglob('*.py')}
    assert not list(space.rglob('__pycache__'))
    for name in ('config.json', 'model.safetensors', 'README.md'):
        assert (space / 'model' / name).read_bytes() == (small_model_dir / name).read_bytes()


@pytest.mark.slow
def test_space_serves_the_page_from_its_own_folder(space, subprocess_env):
    """`python app.py` as the Space runs it: timm_dan imported from the folder's copy, the bundled weights loaded,
    the page served on the port the Space gives it."""
    env = {k: v for k, v in subprocess_env.items() if k not in ('PYTHONPATH', 'TIMM_DAN_DEMO_MODEL')}
    probe = subprocess.run([sys.executable, '-c', 'import timm_dan; print(timm_dan.__file__)'], cwd=space, env=env,
                           capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == str(space / 'timm_dan' / '__init__.py'), probe.stderr
    port = free_port()
    env.update(GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME='127.0.0.1', GRADIO_ANALYTICS_ENABLED='False')
    proc = subprocess.Popen([sys.executable, 'app.py'], cwd=space, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.monotonic() + 240, None
        while page is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f'http://127.0.0.1:{port}/config', timeout=5).read().decode()
            except OSError:
                time.sleep(1)
        assert page is not None, proc.communicate(timeout=30)[0] if proc.poll() is not None else 'no page in 240 s'
        assert f'**local-dir:{space / "model"}**: 7 classes (canonical order)' in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_push_uploads_the_folder_as_a_gradio_space_and_sets_the_model(space, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token):
            calls.append(('token', token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(('create_repo', repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(('upload_folder', kwargs))
            return type('Commit', (), {'commit_url': 'https://huggingface.co/spaces/me/demo/commit/abc'})()

        def add_space_variable(self, repo_id, key, value, **kwargs):
            calls.append(('add_space_variable', repo_id, key, value))

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, 'HfApi', FakeApi)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    summary = push_space(space, 'me/demo', model='hf-hub:me/dan', private=True, token='hf_test')
    assert calls[0] == ('token', 'hf_test')
    assert calls[1] == ('create_repo', 'me/demo', {'repo_type': 'space', 'space_sdk': 'gradio', 'private': True,
                                                   'exist_ok': True})
    upload = calls[2][1]
    assert upload['repo_id'] == 'me/demo' and upload['repo_type'] == 'space' and upload['folder_path'] == str(space)
    assert calls[3] == ('add_space_variable', 'me/demo', 'TIMM_DAN_DEMO_MODEL', 'hf-hub:me/dan')
    assert summary['url'] == 'https://huggingface.co/spaces/me/demo' and summary['commit_url'].endswith('/abc')
    assert summary['files']['model/model.safetensors'] == (space / 'model' / 'model.safetensors').stat().st_size
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(RuntimeError, match='HF_HUB_OFFLINE is set'):
        push_space(space, 'me/demo', token='hf_test')


def test_cli_space_writes_uploads_dry_and_names_bad_input(small_model_dir, tmp_path, capsys):
    out_dir = tmp_path / 'space'
    assert main(['hub', 'space', '--output-dir', str(out_dir), '--model', 'hf-hub:me/dan', '--repo-id', 'me/demo',
                 '--dry-run']) == 0
    out = capsys.readouterr().out
    assert f'Wrote the Space folder {out_dir}' in out
    assert 'Would upload ' in out and ' to https://huggingface.co/spaces/me/demo' in out
    assert 'Space variable TIMM_DAN_DEMO_MODEL=hf-hub:me/dan' in out
    assert SpaceCard.load(out_dir / 'README.md').data.models == ['me/dan'] and not (out_dir / 'model').exists()
    before = sorted(os.listdir(out_dir))
    assert main(['hub', 'space', '--output-dir', str(out_dir)]) == 1  # exists: nothing replaced
    assert f'{out_dir} exists; pass overwrite=True (--overwrite) to replace it' in capsys.readouterr().err
    assert sorted(os.listdir(out_dir)) == before
    assert main(['hub', 'space', '--output-dir', str(tmp_path / 'other'), '--model',
                 f'local-dir:{tmp_path / "missing"}']) == 1
    assert f'{tmp_path / "missing"} is not a folder' in capsys.readouterr().err
    assert not (tmp_path / 'other').exists() and not list(tmp_path.glob('.other.tmp-*'))
    assert main(['hub', 'space', '--output-dir', str(tmp_path / 'other'), '--model', 'dan_resnet50']) == 1
    assert "'dan_resnet50' names no published weights for the demo to show" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['hub', 'space', '--output-dir', str(tmp_path / 'x'), '--repo-id', 'no-slash'])
    assert "--repo-id must be NAMESPACE/NAME, got 'no-slash'" in capsys.readouterr().err
