"""Saving with timm's Hub format and loading back through `local-dir:`; the offline error of pretrained tags."""
import json

import pytest
import timm
import torch
from timm.models import save_for_hf

import timm_dan
from tests.reference_dan import randomize_


@pytest.mark.parametrize('num_classes', [7, 8])
def test_save_for_hf_round_trip(tmp_path, num_classes):
    model = randomize_(timm.create_model('dan_resnet18', num_classes=num_classes, num_heads=2), seed=6).eval()
    save_for_hf(model, tmp_path / 'm', safe_serialization=True)
    files = sorted(p.name for p in (tmp_path / 'm').iterdir())
    assert files == ['config.json', 'model.safetensors']
    config = json.loads((tmp_path / 'm' / 'config.json').read_text())
    assert config['architecture'] == 'dan_resnet18'
    assert config['pretrained_cfg']['label_names'] == list(timm_dan.LABELS[:num_classes])
    assert 'description' not in config['pretrained_cfg']  # random init: no claim about released weights
    assert config['model_args']['num_heads'] == 2

    loaded = timm.create_model(f'local-dir:{tmp_path / "m"}', pretrained=True).eval()
    assert loaded.num_heads == 2 and loaded.num_classes == num_classes
    assert tuple(loaded.pretrained_cfg['label_names']) == timm_dan.LABELS[:num_classes]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_fine_tune_from_saved_weights_with_other_class_count(tmp_path):
    model = randomize_(timm.create_model('dan_resnet18', num_classes=8), seed=7)
    save_for_hf(model, tmp_path / 'm', safe_serialization=True)
    new = timm.create_model(f'local-dir:{tmp_path / "m"}', pretrained=True, num_classes=3)
    assert new.fc.out_features == 3 and new.bn.running_mean.shape == (3,)
    assert torch.equal(new.heads.conv_3x3.conv.weight, model.heads.conv_3x3.conv.weight)
    assert torch.equal(new.backbone.conv1.weight, model.backbone.conv1.weight)


def test_pretrained_tag_offline_without_cache_names_repo_and_ways_out(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(tmp_path / 'cache'))
    with pytest.raises(RuntimeError) as err:
        timm.create_model('dan_resnet18.rafdb', pretrained=True)
    message = str(err.value)
    assert "'timm-dan/dan_resnet18.rafdb'" in message
    assert 'HF_HUB_OFFLINE' in message and 'timm-dan hub convert-official' in message and 'local-dir:' in message


def test_backbone_pretrained_true_loads_timm_imagenet_trunk_from_the_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants
    from safetensors.torch import save

    from tests.hf_cache import populate_hf_cache

    trunk = randomize_(timm.create_model('resnet18'), seed=8)
    hub_id = timm.models.get_pretrained_cfg('resnet18').hf_hub_id
    populate_hf_cache(tmp_path / 'cache', hub_id, {'model.safetensors': save(trunk.state_dict())})
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(tmp_path / 'cache'))

    model = timm.create_model('dan_resnet18', num_classes=7, backbone_pretrained=True)
    assert torch.equal(model.backbone.layer3[0].conv1.weight, trunk.layer3[0].conv1.weight)
    assert torch.equal(model.backbone.bn1.running_mean, trunk.bn1.running_mean)
