"""Hostile or broken model folders: a config.json with wrong types, enormous sizes or an unknown architecture, and a
model.safetensors whose tensors do not fit, are refused before anything large is allocated, naming the field, on
every loading route (timm local-dir:, load_pretrained, load_model_folder, FERPredictor, transformers)."""
import json
import os
import struct

import pytest
import timm
import torch
from safetensors.torch import save_file

from timm_dan.hub import save_model_folder
from timm_dan.hub.folder import load_model_folder, validate_model_folder
from timm_dan.models.guards import ModelConfigError
from timm_dan.models.pretrained import load_pretrained


@pytest.fixture(scope='module')
def good_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model('dan_resnet18', num_classes=7).eval()
    return save_model_folder(model, tmp_path_factory.mktemp('good') / 'best',
                             card={'model_name': 'dan_resnet18.test', 'datasets': ['rafdb']})


def _folder(good_folder, tmp_path, edit=None, weights=None):
    """A copy of the good folder (weights hard-linked) with config.json edited by `edit(config)`."""
    folder = tmp_path / 'folder'
    folder.mkdir(parents=True)
    config = json.loads((good_folder / 'config.json').read_text())
    if edit is not None:
        edit(config)
    (folder / 'config.json').write_text(json.dumps(config))
    (folder / 'README.md').write_text((good_folder / 'README.md').read_text())
    if weights is None:
        os.link(good_folder / 'model.safetensors', folder / 'model.safetensors')
    else:
        weights(folder / 'model.safetensors')
    return folder


def _routes(folder):
    from timm_dan.inference import FERPredictor
    return {
        'timm local-dir': lambda: timm.create_model(f'local-dir:{folder}', pretrained=True),
        'load_pretrained': lambda: load_pretrained(f'local-dir:{folder}'),
        'load_model_folder': lambda: load_model_folder(folder),
        'FERPredictor': lambda: FERPredictor(f'local-dir:{folder}', detector='none', device='cpu'),
    }


def _set(path, value):
    def edit(config):
        *parents, key = path.split('.')
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return edit


@pytest.mark.parametrize('edit, field', [
    (lambda c: c.update(num_classes=10 ** 9, model_args={}), 'num_classes'),  # timm takes it from the top level
    (_set('model_args.num_classes', 10 ** 9), 'num_classes'),
    (_set('model_args.num_classes', '8'), 'num_classes'),
    (_set('model_args.head_dim', 10 ** 7), 'head_dim'),
    (_set('model_args.num_heads', 4.5), 'num_heads'),
    (_set('model_args.in_chans', -3), 'in_chans'),
    (lambda c: c['model_args'].update(head_dim=8192, num_heads=64), 'heads'),  # each in range, together 35 G
])
def test_enormous_or_mistyped_sizes_are_refused_on_every_route(good_folder, tmp_path, edit, field):
    folder = _folder(good_folder, tmp_path, edit)
    for route, load in _routes(folder).items():
        with pytest.raises(ModelConfigError, match=field) as e:
            load()
        assert 'dan_resnet18' in str(e.value) or 'config.json' in str(e.value), route


@pytest.mark.parametrize('edit, message', [
    (_set('architecture', 'evil_net'), "`architecture` 'evil_net' is not a registered timm model"),
    (_set('architecture', 7), '`architecture` must be str'),
    (_set('label_names', 5), '`label_names` must be list'),
    (_set('pretrained_cfg', 'x'), '`pretrained_cfg` must be dict'),
    (_set('model_args', []), '`model_args` must be dict'),
    (_set('pretrained_cfg.input_size', [3, 10 ** 9, 224]), 'pretrained_cfg.input_size'),
    (_set('model_args.backbone_pretrained', '/etc/passwd'), 'model_args.backbone_pretrained'),
    (_set('label_names', ['a', 'b']), 'num_classes is 7 but label_names has 2'),
])
def test_config_json_fields_are_checked_before_timm_reads_them(good_folder, tmp_path, edit, message):
    folder = _folder(good_folder, tmp_path, edit)
    for route in ('load_pretrained', 'load_model_folder', 'FERPredictor'):
        with pytest.raises(ModelConfigError, match=message) as e:
            _routes(folder)[route]()
        assert str(folder / 'config.json') in str(e.value), route
    with pytest.raises(ModelConfigError, match=message):
        validate_model_folder(folder)


def test_config_json_that_is_not_json_or_huge(good_folder, tmp_path):
    folder = _folder(good_folder, tmp_path)
    (folder / 'config.json').write_text('{"architecture": "dan_resnet18", ')
    with pytest.raises(ModelConfigError, match='config.json: not valid JSON'):
        load_pretrained(f'local-dir:{folder}')
    (folder / 'config.json').write_text('[' * 100_000 + ']' * 100_000)
    with pytest.raises(ModelConfigError, match='config.json: not valid JSON|expected a JSON object'):
        load_pretrained(f'local-dir:{folder}')
    with open(folder / 'config.json', 'wb') as f:
        f.truncate(17 << 20)  # sparse: 17 MiB of zeros on paper
    with pytest.raises(ModelConfigError, match='too large for a config.json'):
        load_pretrained(f'local-dir:{folder}')


def _header_only(shape):
    """A safetensors file whose header claims a tensor of `shape` while the file holds 8 bytes of data."""
    def write(path):
        header = json.dumps({'fc.weight': {'dtype': 'F32', 'shape': shape, 'data_offsets': [0, 8]}}).encode()
        path.write_bytes(struct.pack('<Q', len(header)) + header + b'\0' * 8)
    return write


def _state_dict_with(change):
    def write(path):
        model = timm.create_model('dan_resnet18', num_classes=7)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        change(state)
        save_file(state, str(path))
    return write


@pytest.mark.parametrize('weights, message', [
    (_header_only([10 ** 9, 512]), 'not a readable safetensors file'),
    (_state_dict_with(lambda s: s.update({'backbone.conv1.weight': torch.zeros(64, 3, 3, 3)})),
     r"tensor 'backbone.conv1.weight' has shape \[64, 3, 3, 3\], the model expects \[64, 3, 7, 7\]"),
    (_state_dict_with(lambda s: s.update({'evil.payload': torch.zeros(4)})), "the model does not have.*evil.payload"),
    (_state_dict_with(lambda s: s.update({'fc.weight': torch.zeros(20_000, 512)})), 'but the model needs'),
])
def test_weights_that_do_not_fit_are_refused_before_reading(good_folder, tmp_path, weights, message):
    folder = _folder(good_folder, tmp_path, weights=weights)
    for route, load in _routes(folder).items():
        with pytest.raises(ModelConfigError, match=message) as e:
            load()
        assert str(folder / 'model.safetensors') in str(e.value), route


def test_the_good_folder_still_loads_everywhere(good_folder, tmp_path):
    folder = _folder(good_folder, tmp_path)
    for route, load in _routes(folder).items():
        assert load() is not None, route


def test_transformers_route(good_folder, tmp_path):
    transformers = pytest.importorskip('transformers')

    def loadable(config):  # TimmWrapper passes num_classes itself: a repeat in model_args fails (FACTS.md)
        config['model_args'].pop('num_classes', None)  # (our folders leave it out already)

    folder = _folder(good_folder, tmp_path, loadable)
    model = transformers.AutoModelForImageClassification.from_pretrained(folder)
    assert model.config.num_labels == 7
    hostile = _folder(good_folder, tmp_path / 'h', lambda c: (loadable(c), c['model_args'].update(head_dim=10 ** 7)))
    with pytest.raises(ModelConfigError, match='head_dim must be >= 16 and <= 8,192, got 10,000,000'):
        transformers.AutoModelForImageClassification.from_pretrained(hostile)


@pytest.mark.parametrize('edit, weights, message', [
    (_set('model_args.head_dim', 10 ** 7), None, 'head_dim must be >= 16'),
    (None, _state_dict_with(lambda s: s.update({'evil.payload': torch.zeros(4)})), 'evil.payload'),
])
def test_hub_repos_are_checked_like_folders(good_folder, tmp_path, monkeypatch, edit, weights, message):
    from huggingface_hub import constants

    from tests.hf_cache import populate_hf_cache
    folder = _folder(good_folder, tmp_path, edit, weights)
    populate_hf_cache(tmp_path / 'cache', 'someone/hostile', {p.name: p.read_bytes() for p in folder.iterdir()})
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'cache'))
    for load in (lambda: timm.create_model('hf-hub:someone/hostile', pretrained=True),
                 lambda: load_pretrained('hf-hub:someone/hostile')):
        with pytest.raises(ModelConfigError, match=message):
            load()
