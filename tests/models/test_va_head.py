"""The valence/arousal head (`va_head=True`) on every dan_* variant, and the stored calibration temperature."""
import json

import pytest
import timm
import torch
from timm.models import save_for_hf

import timm_dan
from tests.reference_dan import randomize_

MODELS = timm.list_models('dan_*')
SMALL = (3, 64, 64)


@pytest.mark.parametrize('name', MODELS)
def test_every_variant_takes_a_va_head_and_forward_stays_logits_only(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7, va_head=True).train()
    assert model.has_va and not timm.create_model(name, num_classes=7).has_va
    x = torch.randn(2, *SMALL)
    out = model.forward_train(x)
    assert isinstance(out, timm_dan.DANOutputWithVA) and out.valence_arousal.shape == (2, 2)
    assert out.valence_arousal.abs().max() <= 1
    (out.logits.mean() + out.valence_arousal.mean()).backward()
    assert all(p.grad is not None for p in model.va_head.parameters())
    model.eval()
    with torch.no_grad():
        logits = model(x)
        logits_va, va = model.forward_with_va(x)
    assert logits.shape == (2, 7)  # plain forward: logits only, as timm, transformers and ONNX expect
    torch.testing.assert_close(logits_va, logits)
    torch.testing.assert_close(va, model.forward_train(x).valence_arousal)


def test_without_va_head_the_outputs_are_as_before():
    model = timm.create_model('dan_resnet18', num_classes=7).eval()
    x = torch.randn(2, *SMALL)
    with torch.no_grad():
        logits, features, heads = model.forward_train(x)  # a DANOutput unpacks as it always did
        prediction = model.forward_with_va(x)
    assert prediction.valence_arousal is None
    torch.testing.assert_close(prediction.logits, logits)
    with pytest.raises(RuntimeError, match='va_head=True'):
        model.forward_va_head(torch.zeros(2, 512))


def test_va_head_needs_the_attention_heads_and_goes_with_them():
    with pytest.raises(ValueError, match="va_head needs DAN's attention heads"):
        timm.create_model('dan_resnet18', num_classes=0, global_pool='', va_head=True)
    model = timm.create_model('dan_resnet18', va_head=True)
    model.reset_classifier(5)
    assert model.has_va and model.fc.out_features == 5
    model.reset_classifier(0, '')
    assert not model.has_va


def test_va_head_and_temperature_round_trip_through_a_hub_folder(tmp_path):
    model = randomize_(timm.create_model('dan_resnet18', num_classes=7, num_heads=2, va_head=True), seed=3).eval()
    save_for_hf(model, tmp_path / 'm', safe_serialization=True, model_config={'model_args': {'temperature': 1.7}})
    config = json.loads((tmp_path / 'm' / 'config.json').read_text())
    assert config['model_args']['va_head'] is True and config['model_args']['temperature'] == 1.7
    loaded = timm.create_model(f'local-dir:{tmp_path / "m"}', pretrained=True).eval()
    assert loaded.has_va and loaded.temperature == 1.7
    x = torch.randn(2, *SMALL)
    with torch.no_grad():
        for got, expected in zip(loaded.forward_with_va(x), model.forward_with_va(x), strict=True):
            assert torch.equal(got, expected)
        assert torch.equal(loaded(x), model(x))  # the temperature never changes forward


def test_fine_tuning_adds_or_drops_the_va_head(tmp_path):
    plain = randomize_(timm.create_model('dan_resnet18', num_classes=8), seed=4)
    save_for_hf(plain, tmp_path / 'plain', safe_serialization=True)
    with_va = timm.create_model(f'local-dir:{tmp_path / "plain"}', pretrained=True, va_head=True)
    assert with_va.has_va  # weights without a head: a fresh one, the rest loaded
    assert torch.equal(with_va.backbone.conv1.weight, plain.backbone.conv1.weight)
    assert torch.equal(with_va.fc.weight, plain.fc.weight)

    save_for_hf(randomize_(with_va, seed=5), tmp_path / 'va', safe_serialization=True)
    dropped = timm.create_model(f'local-dir:{tmp_path / "va"}', pretrained=True, va_head=False)
    assert not dropped.has_va and 'va_head.fc.weight' not in dropped.state_dict()
    assert torch.equal(dropped.fc.weight, with_va.fc.weight)


def test_temperature_must_be_positive():
    assert timm.create_model('dan_resnet18').temperature is None
    with pytest.raises(ValueError, match='temperature must be > 0'):
        timm.create_model('dan_resnet18', temperature=0.0)
