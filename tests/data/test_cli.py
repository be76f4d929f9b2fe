"""`timm-dan data info|export`: the table, JSON, save_to_disk with embedded images, Hub argument handling."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from datasets import DatasetDict, load_from_disk
from PIL import Image

from timm_dan.cli import main

SMALL = ['-o', 'num_samples=16', '-o', 'num_validation_samples=8', '-o', 'image_size=32']


@pytest.mark.slow
def test_info_synthetic_table(subprocess_env):
    out = subprocess.run([sys.executable, '-m', 'timm_dan', 'data', 'info', 'synthetic', *SMALL],
                         env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].split() == ['class', 'train', 'validation', 'total']
    assert lines[2].split() == ['neutral', '2', '1', '3'] and lines[9].split() == ['contempt', '2', '1', '3']
    assert lines[10].split() == ['total', '16', '8', '24']
    assert [line.split()[0] for line in lines[11:14]] == ['dropped', 'missing', 'corrupt']


def test_info_json_lists_missing_files(tmp_path, capsys):
    root = tmp_path / 'raf'
    (root / 'EmoLabel').mkdir(parents=True)
    (root / 'EmoLabel' / 'list_patition_label.txt').write_text('train_00001.jpg 4\ntest_0001.jpg 7\n')
    (root / 'Image' / 'aligned').mkdir(parents=True)
    Image.new('RGB', (8, 8)).save(root / 'Image' / 'aligned' / 'train_00001_aligned.jpg')
    assert main(['data', 'info', 'rafdb', '--data-dir', str(root), '--cache-dir', str(tmp_path / 'c'), '--json']) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary['splits']['train']['classes']['happy'] == 1 and summary['splits']['test']['num_rows'] == 0
    assert summary['missing'] == {'train': [], 'test': [str(root / 'Image' / 'aligned' / 'test_0001_aligned.jpg')]}
    # a missing data dir is a clear error, exit 1
    assert main(['data', 'info', 'rafdb', '--data-dir', str(tmp_path / 'none')]) == 1
    assert f"{tmp_path / 'none'} not found" in capsys.readouterr().err
    assert main(['data', 'info', 'rafdb', '--data-dir', str(tmp_path)]) == 1
    assert 'Expected the official layout' in capsys.readouterr().err


def test_export_embeds_images(tmp_path):
    root = tmp_path / 'raf'
    (root / 'EmoLabel').mkdir(parents=True)
    (root / 'EmoLabel' / 'list_patition_label.txt').write_text('train_00001.jpg 1\ntest_0001.jpg 2\n')
    for name in ('train_00001', 'test_0001'):
        (root / 'Image' / 'aligned').mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((6, 6, 3), 200, np.uint8)).save(root / 'Image' / 'aligned' / f'{name}_aligned.png')
    (root / 'EmoLabel' / 'list_patition_label.txt').write_text('train_00001.png 1\ntest_0001.png 2\n')
    out = tmp_path / 'export'
    assert main(['data', 'export', 'rafdb', '--data-dir', str(root), '--cache-dir', str(tmp_path / 'c'),
                 '--output', str(out)]) == 0
    shutil.rmtree(root)  # the export stands alone
    exported = load_from_disk(str(out))
    assert isinstance(exported, DatasetDict) and exported['train'].num_rows == 1
    assert exported['train'][0]['label'] == 3 and np.asarray(exported['test'][0]['image']).max() == 200


def test_export_argument_errors(capsys):
    assert main(['data', 'export', 'synthetic']) == 2
    assert '--output' in capsys.readouterr().err
    assert main(['data', 'export', 'synthetic', '--output', 'x', '--private']) == 2
    assert '--private only applies' in capsys.readouterr().err


def test_push_to_hub_offline_is_a_clear_error(monkeypatch, capsys):
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)  # what huggingface_hub itself reads
    assert main(['data', 'export', 'synthetic', '--push-to-hub', 'me/fer', '--private']) == 2
    assert 'HF_HUB_OFFLINE' in capsys.readouterr().err


@pytest.mark.slow
def test_push_to_hub_without_token_is_a_clear_error(subprocess_env):
    env = {k: v for k, v in subprocess_env.items() if k != 'HF_TOKEN'}  # and HF_HOME is empty: no token file
    cmd = [sys.executable, '-m', 'timm_dan', 'data', 'export', 'synthetic', '--push-to-hub', 'me/fer', '--private']
    out = subprocess.run(cmd, env={**env, 'HF_HUB_OFFLINE': '0'}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and 'No Hugging Face token found: run `hf auth login`' in out.stderr


def test_push_to_hub_private(monkeypatch, tmp_path, capsys):
    import huggingface_hub
    calls = []
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setenv('HF_TOKEN', 'hf_not_a_real_token')
    monkeypatch.setattr(DatasetDict, 'push_to_hub', lambda self, repo, **kw: calls.append((self, repo, kw)))
    assert main(['data', 'export', 'synthetic', *SMALL, '--cache-dir', str(tmp_path), '--push-to-hub', 'team/fer',
                 '--private']) == 0
    (dataset, repo, kwargs), = calls
    assert repo == 'team/fer' and kwargs == {'private': True, 'token': 'hf_not_a_real_token'}
    assert dataset['train'].num_rows == 16
    assert 'pushed synthetic to team/fer (private)' in capsys.readouterr().out


@pytest.mark.parametrize('bad', ['novalue', '=3'])
def test_option_syntax(bad, capsys):
    with pytest.raises(SystemExit):
        main(['data', 'info', 'synthetic', '-o', bad])
    assert 'KEY=VALUE' in capsys.readouterr().err
