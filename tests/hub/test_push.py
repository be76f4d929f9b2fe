"""hub/push.py: validation, --dry-run output, the no-token message, and the upload calls (no network)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from timm_dan.hub import Metric, ModelCardInfo, push_model_folder, save_model_folder
from timm_dan.hub.card import card_for_repo


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model('dan_resnet18', num_classes=7).eval()
    card = ModelCardInfo('dan_resnet18.test-run', ['rafdb'], metrics=[Metric('accuracy', 50.0, 'rafdb')],
                         load_name='local-dir:runs/test/best')  # as train.py writes it
    return save_model_folder(model, tmp_path_factory.mktemp('push') / 'best', card=card)


def _push(args, env):
    push = Path(__file__).resolve().parents[2] / 'hub' / 'push.py'
    return subprocess.run([sys.executable, str(push), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_dry_run_prints_files_and_metadata(folder, subprocess_env):
    proc = _push([folder, '--repo-id', 'timm-dan/dan_resnet18.test-run', '--dry-run', '--private'], subprocess_env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert 'Would upload to https://huggingface.co/timm-dan/dan_resnet18.test-run (private):' in out
    for name in ('README.md', 'config.json', 'model.safetensors'):
        size = (folder / name).stat().st_size
        assert f'  {name}  {size:,} bytes' in out
    assert "Model: 7 classes ['neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger'], output [2, 7]" in out
    metadata = json.loads(out.split('Card metadata:\n')[1])
    assert metadata['library_name'] == 'timm'
    assert metadata['model-index'][0]['results'][0]['metrics'][0]['value'] == 50.0


def test_no_token_is_a_clear_error(folder, monkeypatch):
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, 'get_token', lambda: None)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    with pytest.raises(RuntimeError, match=r'No Hugging Face token found: run `hf auth login`, or set HF_TOKEN .* '
                                           r"write access to 'timm-dan'"):
        push_model_folder(folder, 'timm-dan/x')


def test_offline_upload_is_refused(folder, monkeypatch):
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(RuntimeError, match='HF_HUB_OFFLINE is set'):
        push_model_folder(folder, 'timm-dan/x', token='hf_test')


def test_folder_without_config_names_it(folder, tmp_path):
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'model.safetensors').write_bytes((folder / 'model.safetensors').read_bytes())
    with pytest.raises(FileNotFoundError, match=f'{broken} is not a complete timm Hub folder: missing config.json, '
                                                'README.md'):
        push_model_folder(broken, 'timm-dan/x', dry_run=True)


def test_upload_calls(folder, monkeypatch):
    calls = []

    class FakeCommit:
        commit_url = 'https://huggingface.co/timm-dan/x/commit/abc'
        pr_url = 'https://huggingface.co/timm-dan/x/discussions/1'

    class FakeApi:
        def __init__(self, token):
            calls.append(('token', token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(('create_repo', repo_id, kwargs))

        def create_commit(self, repo_id, operations, **kwargs):
            calls.append(('create_commit', repo_id, operations, kwargs))
            return FakeCommit()

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, 'HfApi', FakeApi)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    summary = push_model_folder(folder, 'timm-dan/x', private=True, create_pr=True, token='hf_test')
    assert summary['url'] == FakeCommit.pr_url
    assert calls[0] == ('token', 'hf_test')
    assert calls[1] == ('create_repo', 'timm-dan/x', {'private': True, 'exist_ok': True})
    _, repo_id, operations, kwargs = calls[2]  # one commit holds the three files
    assert repo_id == 'timm-dan/x' and kwargs['create_pr'] is True
    files = {op.path_in_repo: op.path_or_fileobj for op in operations}
    assert sorted(files) == ['README.md', 'config.json', 'model.safetensors']
    assert files['config.json'] == str(folder / 'config.json')
    assert files['model.safetensors'] == str(folder / 'model.safetensors')
    # the uploaded card loads the repo it goes to; the folder's own card is left as it was
    local = (folder / 'README.md').read_text()
    assert 'timm.create_model("local-dir:runs/test/best", pretrained=True)' in local
    assert files['README.md'].decode() == local.replace('"local-dir:runs/test/best"', '"hf-hub:timm-dan/x"')
    assert summary['card'] == files['README.md'].decode()


def test_dry_run_needs_no_repo_id_and_upload_does(folder, capsys):
    from timm_dan.cli import main
    assert main(['hub', 'push', str(folder), '--dry-run']) == 0
    out = capsys.readouterr().out
    assert 'Would upload to https://huggingface.co/NAMESPACE/NAME:' in out
    assert 'Card, How to use: model = timm.create_model("hf-hub:NAMESPACE/NAME", pretrained=True).eval()' in out
    with pytest.raises(SystemExit) as exit_info:
        main(['hub', 'push', str(folder)])
    assert exit_info.value.code == 2
    assert '--repo-id NAMESPACE/NAME is needed to upload (or pass --dry-run)' in capsys.readouterr().err


def test_card_for_repo_rewrites_every_load_name_of_how_to_use():
    card = '\n'.join([
        '---', 'library_name: timm', '---', '# Model card', '', '## How to use', '', '```python',
        'model = timm.create_model("local-dir:runs/synthetic/best", pretrained=True)',
        'hf_model = AutoModelForImageClassification.from_pretrained("runs/synthetic/best")', '```', '',
        '## Training', '', 'Trained in runs/synthetic/best: "local-dir:runs/synthetic/best".', ''])
    out = card_for_repo(card, 'me/dan-demo')
    usage, training = out.split('## How to use')[1].split('## Training')
    assert 'timm.create_model("hf-hub:me/dan-demo", pretrained=True)' in usage
    assert 'from_pretrained("me/dan-demo")' in usage and 'runs/synthetic' not in usage
    assert training == card.split('## Training')[1]  # other sections are left as they are
    assert card_for_repo(out, 'me/other').count('hf-hub:me/other') == 1  # an hf-hub: name is retargeted too
    assert card_for_repo('no usage section', 'me/x') == 'no usage section'
