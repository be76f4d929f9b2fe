"""timm_dan/hub/models.yaml agrees with the pretrained cfgs in timm_dan/models/dan.py; MODEL_CARD.md is current."""
import re

import pytest
import timm
from huggingface_hub import ModelCard

import timm_dan
from timm_dan.hub import DEFAULT_MANIFEST, family_card, load_manifest, render_model_card


@pytest.fixture(scope='module')
def manifest():
    return load_manifest()


def test_manifest_matches_pretrained_cfgs(manifest):
    assert manifest['namespace'] == timm_dan.HF_HUB_NAMESPACE
    entries = {m['tag']: m for m in manifest['models']}
    published_cfgs = {name: timm.models.get_pretrained_cfg(name) for name in timm.list_pretrained('dan_*')}
    published_cfgs = {name: cfg for name, cfg in published_cfgs.items() if cfg.hf_hub_id}
    assert sorted(entries) == sorted(published_cfgs)
    for tag, cfg in published_cfgs.items():
        entry = entries[tag]
        assert cfg.hf_hub_id == entry['repo_id'] == f'{manifest["namespace"]}/{tag}'
        assert tag == f'{entry["architecture"]}.{entry["dataset"]}'
        assert cfg.num_classes == entry['num_classes']
        assert tuple(cfg.label_names) == timm_dan.LABELS[:entry['num_classes']]
        assert cfg.license == entry['license']
        for metric in entry['metrics']:  # the cfg's description quotes the authors' numbers
            assert f'{metric["value"]:.2f}%' in cfg.description, (tag, metric)
            assert 'reported' in metric['measured_by'] and 'not measured here' in metric['measured_by']
        name = entry['source']['file']
        assert re.fullmatch(r'(rafdb|affecnet[78])_epoch\d+_acc0\.\d+(_bacc0\.\d+)?\.pth', name)
        assert entry['source']['sha256'] is None or re.fullmatch(r'[0-9a-f]{64}', entry['source']['sha256'])


def test_default_tag(manifest):
    defaults = [m['tag'] for m in manifest['models'] if m.get('default')]
    assert defaults == ['dan_resnet18.affectnet8']
    assert timm.models.get_pretrained_cfg('dan_resnet18').tag == defaults[0].split('.')[1]


def test_model_card_md_is_current(repo_root, manifest):
    expected = render_model_card(family_card(manifest))
    assert (repo_root / 'MODEL_CARD.md').read_text(encoding='utf-8') == expected, \
        'MODEL_CARD.md is out of date: run python hub/render_card.py'
    assert DEFAULT_MANIFEST == repo_root / 'timm_dan' / 'hub' / 'models.yaml'


def test_family_card_metadata(repo_root, manifest):
    card = ModelCard.load(repo_root / 'MODEL_CARD.md')
    data = card.data
    assert data.library_name == 'timm' and data.pipeline_tag == 'image-classification'
    assert data.license == 'other'
    assert set(data.tags) >= {'image-classification', 'facial-expression-recognition', 'timm', 'dan'}
    assert sorted(data.datasets) == ['affectnet', 'raf-db']
    results = {(r.dataset_type, r.dataset_config, r.metric_type): r for r in data.eval_results}
    expected = {(m['dataset'], x['name']): x['value'] for m in manifest['models'] for x in m['metrics']}
    assert len(results) == len(expected) == 4
    assert results[('affectnet', '8-class', 'accuracy')].metric_value == expected[('affectnet8', 'accuracy')]
    assert results[('affectnet', '7-class', 'accuracy')].metric_value == expected[('affectnet7', 'accuracy')]
    assert results[('raf-db', None, 'accuracy')].metric_value == expected[('rafdb', 'accuracy')] == 89.70
    assert results[('raf-db', None, 'mean_class_accuracy')].metric_value == 82.75
    assert all(r.source_name == 'measured by the authors (reported; not measured here)' for r in results.values())
    for m in manifest['models'] + manifest['backbones']:  # states what is published where
        assert f'| `{m["tag"]}` | [`{m["repo_id"]}`](https://huggingface.co/{m["repo_id"]}) |' in card.text
    assert 'timm.create_model("dan_resnet18.affectnet8", pretrained=True)' in card.text
