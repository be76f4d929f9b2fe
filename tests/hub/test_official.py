"""Official checkpoints -> timm Hub folders, and `pretrained=True` from a Hugging Face cache, offline."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from huggingface_hub import ModelCard

import timm_dan
from tests.hf_cache import populate_hf_cache
from tests.reference_dan import ReferenceDAN, official_checkpoint
from timm_dan.hub import convert_backbone_file, convert_official_file, sha256_file
from timm_dan.models.official import OFFICIAL_LABEL_MAPS
from timm_dan.models.pretrained import find_weights, load_pretrained

RAFDB_FILE = 'rafdb_epoch21_acc0.897_bacc0.8275.pth'
RAFDB_REPO = 'timm-dan/dan_resnet18.rafdb'
CONVERT = Path(__file__).resolve().parents[2] / 'hub' / 'convert_official.py'


def randomized_official_checkpoint(num_classes: int, seed: int = 0) -> tuple:
    """(a checkpoint in the authors' file layout with random weights, the naive model holding them, eval mode)."""
    checkpoint = official_checkpoint(num_classes, seed)
    reference = ReferenceDAN(num_classes)
    reference.load_state_dict(checkpoint['model_state_dict'])
    return checkpoint, lambda x: reference.eval()(x)


def _canonical(logits: torch.Tensor, dataset: str) -> torch.Tensor:
    perm = OFFICIAL_LABEL_MAPS[dataset]  # native index -> canonical index
    return logits[:, [perm.index(c) for c in range(len(perm))]]


@pytest.fixture(scope='module')
def rafdb(tmp_path_factory, repo_root):
    """The authors' RAF-DB file layout (random weights), its naive model, and the folder the script made."""
    root = tmp_path_factory.mktemp('rafdb')
    checkpoint, official = randomized_official_checkpoint(7)
    ckpt_path = root / RAFDB_FILE
    torch.save(checkpoint, ckpt_path)
    env = dict(os.environ, PYTHONPATH=str(repo_root), HF_HUB_OFFLINE='1', HF_HOME=str(root / 'hf_home'))
    proc = subprocess.run(
        [sys.executable, str(CONVERT), str(ckpt_path), '--dataset', 'rafdb', '--output-dir',
         str(root / 'dan-rafdb')], env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(ckpt=ckpt_path, official=official, folder=root / 'dan-rafdb', stdout=proc.stdout)


def test_convert_official_rafdb_logits_match_naive_reference(rafdb):
    folder = rafdb['folder']
    assert sorted(p.name for p in folder.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    sha = sha256_file(rafdb['ckpt'])
    assert sha in rafdb['stdout'] and 'model.safetensors' in rafdb['stdout']

    model = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    assert model.num_classes == 7
    assert tuple(model.pretrained_cfg['label_names']) == timm_dan.LABELS[:7]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = _canonical(rafdb['official'](x), 'rafdb')
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    # happy is native index 3 and canonical index 1: the permutation really moved rows
    assert not torch.allclose(expected, rafdb['official'](x).detach(), atol=1e-3)

    config = json.loads((folder / 'config.json').read_text())
    assert config['pretrained_cfg']['input_size'] == [3, 224, 224]
    assert config['pretrained_cfg']['tag'] == 'rafdb'
    assert {'mean', 'std', 'crop_pct', 'interpolation'} <= set(config['pretrained_cfg'])


def test_converted_card_records_source_and_authors_numbers(rafdb):
    card = ModelCard.load(rafdb['folder'] / 'README.md')
    assert f'`{RAFDB_FILE}` (SHA-256 `{sha256_file(rafdb["ckpt"])}`)' in card.text
    results = {r.metric_type: r for r in card.data.eval_results}
    assert results['accuracy'].metric_value == 89.7 and results['mean_class_accuracy'].metric_value == 82.75
    assert results['accuracy'].source_name == 'measured by the authors (reported; not measured here)'
    assert card.data.license == 'other' and card.data.datasets == ['raf-db']
    assert f'hf-hub:{RAFDB_REPO}' in card.text


def test_convert_official_affectnet8_keeps_order(tmp_path):
    checkpoint, official = randomized_official_checkpoint(8, seed=1)
    torch.save(checkpoint, tmp_path / 'affecnet8_epoch5_acc0.6209.pth')
    folder = convert_official_file(tmp_path / 'affecnet8_epoch5_acc0.6209.pth', 'affectnet8', tmp_path / 'out')
    model = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    assert tuple(model.pretrained_cfg['label_names']) == timm_dan.LABELS
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), official(x), rtol=1e-4, atol=1e-4)


def test_wrong_dataset_for_class_count(rafdb, tmp_path):
    with pytest.raises(ValueError, match=r"7 classes but dataset='affectnet8' means 8"):
        convert_official_file(rafdb['ckpt'], 'affectnet8', tmp_path / 'out')
    assert not (tmp_path / 'out').exists()


def test_not_the_authors_layout_names_keys(tmp_path):
    timm_sd = timm.create_model('dan_resnet18', num_classes=7).state_dict()
    torch.save(timm_sd, tmp_path / 'mine.pth')
    with pytest.raises(KeyError) as err:
        convert_official_file(tmp_path / 'mine.pth', 'rafdb', tmp_path / 'out')
    message = err.value.args[0]
    assert "missing keys ['cat_head0.sa.conv1x1.0.weight'" in message
    assert "unexpected keys ['backbone.bn1.bias'" in message


class TrainingArgs:  # what a training script might pickle beside the weights
    lr = 0.1


def test_full_pickle_is_refused(tmp_path):
    checkpoint, _ = randomized_official_checkpoint(7)
    torch.save({**checkpoint, 'args': TrainingArgs()}, tmp_path / 'pickled.pth')
    with pytest.raises(ValueError, match='Refusing to load .*pickled.pth.*arbitrary code'):
        convert_official_file(tmp_path / 'pickled.pth', 'rafdb', tmp_path / 'out')


def test_recorded_sha256_mismatch_is_refused(rafdb, tmp_path):
    recorded = dataclasses.replace(find_weights(dataset='rafdb'), source_sha256='0' * 64)
    with pytest.raises(ValueError, match=r'but the table of published weights \(timm_dan/models/pretrained.py\) '
                                         r'records 0000'):
        convert_official_file(rafdb['ckpt'], 'rafdb', tmp_path / 'out', weights=recorded)


def test_convert_script_error_is_one_line(rafdb, subprocess_env, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(CONVERT), str(rafdb['ckpt']), '--dataset', 'affectnet8', '--output-dir',
         str(tmp_path / 'out')], env=subprocess_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert 'error: The checkpoint has 7 classes' in proc.stderr and 'Traceback' not in proc.stderr


def test_convert_backbone(tmp_path):
    torch.manual_seed(0)
    trunk = torchvision.models.resnet18(num_classes=10).eval()  # a face-ID classifier head, dropped
    torch.save({'state_dict': trunk.state_dict()}, tmp_path / 'resnet18_msceleb.pth')
    folder = convert_backbone_file(tmp_path / 'resnet18_msceleb.pth', tmp_path / 'resnet18-msceleb')
    model = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    trunk.fc = torch.nn.Identity()
    with torch.no_grad():
        torch.testing.assert_close(model(x), trunk(x))
    dan = timm.create_model('dan_resnet18', backbone_pretrained=str(folder / 'model.safetensors'))
    torch.testing.assert_close(dan.backbone.conv1.weight, trunk.conv1.weight)
    card = ModelCard.load(folder / 'README.md')
    assert card.data.datasets == ['ms-celeb-1m'] and 'backbone_pretrained=' in card.text


@pytest.mark.slow
def test_pretrained_from_offline_cache(rafdb, subprocess_env, tmp_path):
    files = {p.name: p.read_bytes() for p in rafdb['folder'].iterdir()}
    populate_hf_cache(tmp_path / 'hf_home' / 'hub', RAFDB_REPO, files)
    assert subprocess_env['HF_HOME'] == str(tmp_path / 'hf_home')
    x = torch.randn(2, 3, 64, 64)
    torch.save(x, tmp_path / 'x.pt')
    script = (
        'import sys, torch, timm, timm_dan\n'
        'x = torch.load(sys.argv[1])\n'
        'out = {}\n'
        'for name in ("dan_resnet18.rafdb", "hf-hub:timm-dan/dan_resnet18.rafdb"):\n'
        '    m = timm.create_model(name, pretrained=True).eval()\n'
        '    assert tuple(m.pretrained_cfg["label_names"]) == timm_dan.LABELS[:7], m.pretrained_cfg\n'
        '    out[name] = m(x).detach()\n'
        'torch.save(out, sys.argv[2])\n'
    )
    proc = subprocess.run([sys.executable, '-c', script, str(tmp_path / 'x.pt'), str(tmp_path / 'out.pt')],
                          env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = torch.load(tmp_path / 'out.pt')
    with torch.no_grad():
        expected = _canonical(rafdb['official'](x), 'rafdb')
    for name in ('dan_resnet18.rafdb', 'hf-hub:timm-dan/dan_resnet18.rafdb'):
        torch.testing.assert_close(out[name], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('name, repo_id, convert', [
    ('dan_resnet18.rafdb', RAFDB_REPO, f'{RAFDB_FILE} --dataset rafdb --output-dir dan-rafdb'),
    ('hf-hub:timm-dan/dan_resnet18.rafdb', RAFDB_REPO, f'{RAFDB_FILE} --dataset rafdb'),
    ('dan_resnet18', 'timm-dan/dan_resnet18.affectnet8', 'affecnet8_epoch5_acc0.6209.pth --dataset affectnet8'),
    ('hf-hub:someone/dan-finetuned', 'someone/dan-finetuned', 'CHECKPOINT.pth --dataset {rafdb,affectnet7,affectnet8}'),
])
def test_pretrained_offline_not_cached_is_one_clear_error(name, repo_id, convert, tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'empty-cache'))
    with pytest.raises(RuntimeError) as err:
        load_pretrained(name)
    message = str(err.value)
    assert f'Hugging Face Hub repo {repo_id!r}' in message
    assert 'go online (unset HF_HUB_OFFLINE)' in message
    assert f'timm-dan hub convert-official {convert}' in message and '--model local-dir:' in message
    assert 'timm.create_model("local-dir:' in message and 'github.com/yaoing/DAN' in message
