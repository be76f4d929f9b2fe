"""The table of published weights (timm_dan/models/pretrained.py) gives the pretrained cfgs and every card;
MODEL_CARD.md is current."""
import re

import timm
from huggingface_hub import ModelCard

import timm_dan
from timm_dan.hub import family_card, render_model_card
from timm_dan.models.pretrained import BACKBONES, PRETRAINED


def test_table_gives_the_pretrained_cfgs():
    entries = {w.name: w for w in PRETRAINED}
    published_cfgs = {name: timm.models.get_pretrained_cfg(name) for name in timm.list_pretrained('dan_*')}
    published_cfgs = {name: cfg for name, cfg in published_cfgs.items() if cfg.hf_hub_id}
    assert sorted(entries) == sorted(published_cfgs)
    for tag, cfg in published_cfgs.items():
        entry = entries[tag]
        assert cfg.hf_hub_id == entry.hf_hub_id == f'{timm_dan.HF_HUB_NAMESPACE}/{tag}'
        assert tag == f'{entry.architecture}.{entry.dataset}'
        assert cfg.num_classes == entry.num_classes
        assert tuple(cfg.label_names) == timm_dan.LABELS[:entry.num_classes]
        assert cfg.license == entry.license
        assert entry.metrics
        for metric in entry.metrics:  # the cfg's description quotes the authors' numbers
            assert f'{metric.value:.2f}%' in cfg.description, (tag, metric)
            assert 'reported' in metric.measured_by and 'not measured here' in metric.measured_by
        assert re.fullmatch(r'(rafdb|affecnet[78])_epoch\d+_acc0\.\d+(_bacc0\.\d+)?\.pth', entry.source_file)
        assert entry.source_sha256 is None or re.fullmatch(r'[0-9a-f]{64}', entry.source_sha256)


def test_default_tag():
    assert PRETRAINED[0].name == 'dan_resnet18.affectnet8'
    assert timm.models.get_pretrained_cfg('dan_resnet18').tag == PRETRAINED[0].tag


def test_model_card_md_is_current(repo_root):
    expected = render_model_card(family_card())
    assert (repo_root / 'MODEL_CARD.md').read_text(encoding='utf-8') == expected, \
        'MODEL_CARD.md is out of date: run timm-dan hub card (or python hub/render_card.py)'


def test_family_card_metadata(repo_root):
    card = ModelCard.load(repo_root / 'MODEL_CARD.md')
    data = card.data
    assert data.library_name == 'timm' and data.pipeline_tag == 'image-classification'
    assert data.license == 'other'
    assert set(data.tags) >= {'image-classification', 'facial-expression-recognition', 'timm', 'dan'}
    assert sorted(data.datasets) == ['affectnet', 'raf-db']
    results = {(r.dataset_type, r.dataset_config, r.metric_type): r for r in data.eval_results}
    expected = {(w.dataset, m.name): m.value for w in PRETRAINED for m in w.metrics}
    assert len(results) == len(expected) == 4
    assert results[('affectnet', '8-class', 'accuracy')].metric_value == expected[('affectnet8', 'accuracy')]
    assert results[('affectnet', '7-class', 'accuracy')].metric_value == expected[('affectnet7', 'accuracy')]
    assert results[('raf-db', None, 'accuracy')].metric_value == expected[('rafdb', 'accuracy')] == 89.70
    assert results[('raf-db', None, 'mean_class_accuracy')].metric_value == 82.75
    assert all(r.source_name == 'measured by the authors (reported; not measured here)' for r in results.values())
    for w in PRETRAINED + BACKBONES:  # states what is published where
        assert f'| `{w.name}` | [`{w.hf_hub_id}`](https://huggingface.co/{w.hf_hub_id}) |' in card.text
    assert 'timm.create_model("dan_resnet18.affectnet8", pretrained=True)' in card.text


def test_card_check_command(repo_root, tmp_path, capsys):
    from timm_dan.cli import main
    assert main(['hub', 'card', '--output', str(repo_root / 'MODEL_CARD.md'), '--check']) == 0
    stale = tmp_path / 'MODEL_CARD.md'
    stale.write_text('old\n', encoding='utf-8')
    assert main(['hub', 'card', '--output', str(stale), '--check']) == 1
    assert 'out of date: run timm-dan hub card' in capsys.readouterr().out
    assert main(['hub', 'card', '--output', str(stale)]) == 0
    assert stale.read_text(encoding='utf-8') == (repo_root / 'MODEL_CARD.md').read_text(encoding='utf-8')
