"""timm's model contract (the checks of timm's tests/test_models.py), for every registered dan_* model."""
import math

import pytest
import timm
import torch
from timm.layers import get_channel_dim, get_spatial_dim
from timm.models import get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import timm_dan  # noqa: F401  (registers the models)

MODELS = timm.list_models('dan_*')
SMALL = (3, 64, 64)


def test_registry():
    assert set(MODELS) >= {'dan_resnet18', 'dan_resnet50', 'dan_mobilenetv3_large_100', 'dan_efficientnet_b0',
                           'dan_convnext_tiny'}
    assert timm.list_models('dan_*', pretrained=True) == [
        'dan_resnet18.affectnet7', 'dan_resnet18.affectnet8', 'dan_resnet18.rafdb']
    assert timm.models.get_pretrained_cfg('dan_resnet18').tag == 'affectnet8'  # the default tag


@pytest.mark.parametrize('name', timm.list_models('dan_*', pretrained=True))
def test_pretrained_cfgs(name):
    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    tag = name.split('.')[1]
    assert cfg['hf_hub_id'] == f'{timm_dan.HF_HUB_NAMESPACE}/{name}'
    assert cfg['num_classes'] == (8 if tag == 'affectnet8' else 7)
    assert tuple(cfg['label_names']) == timm_dan.LABELS[:cfg['num_classes']]
    assert cfg['input_size'] == (3, 224, 224) and cfg['crop_pct'] == 1.0 and cfg['interpolation'] == 'bilinear'
    assert cfg['mean'] == timm.data.IMAGENET_DEFAULT_MEAN and cfg['license']


@pytest.mark.parametrize('name', MODELS)
def test_forward_and_backward(name):
    model = timm.create_model(name).eval()
    out = model(torch.randn(1, *SMALL))
    assert out.shape == (1, model.num_classes) and not torch.isnan(out).any()

    model = timm.create_model(name, num_classes=42).train()
    out = model(torch.randn(2, *SMALL))
    out.mean().backward()
    assert out.shape == (2, 42)
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f'no gradient for {missing}'


@pytest.mark.parametrize('name', MODELS)
def test_default_cfg_pooling_and_classifier(name):
    model = timm.create_model(name).eval()
    cfg = model.pretrained_cfg
    state_dict = model.state_dict()
    x = torch.randn(1, *cfg['input_size'])
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        assert feats.shape[-2:] == cfg['pool_size'] and feats.shape[1] == model.num_features
        assert pre.shape == (1, model.head_hidden_size)

        model.reset_classifier(0)
        assert model.num_classes == 0
        out = model(x)
        assert out.shape == pre.shape
        torch.testing.assert_close(out, pre)

        model.reset_classifier(0, '')
        assert model(x).shape[-2:] == cfg['pool_size'] and model(x).ndim == 4

        model = timm.create_model(name, num_classes=0, global_pool='').eval()
        out = model(x)
        assert out.ndim == 4 and out.shape[-2:] == cfg['pool_size']
    for c in cfg['classifier']:
        assert c + '.weight' in state_dict
    assert cfg['first_conv'] + '.weight' in state_dict


@pytest.mark.parametrize('name', MODELS)
def test_torchscript(name):
    with timm.set_scriptable(True):
        model = timm.create_model(name).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, *SMALL)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('name', MODELS)
@pytest.mark.parametrize('feature_cls', [None, 'getter'])
def test_features_only(name, feature_cls):
    kwargs = dict(feature_cls=feature_cls) if feature_cls else {}
    model = timm.create_model(name, features_only=True, **kwargs).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) >= 4
    outputs = model(torch.randn(1, *SMALL))
    assert len(outputs) == len(channels)
    for c, r, o in zip(channels, reductions, outputs):
        assert o.shape[1] == c and o.shape[0] == 1
        assert o.shape[-1] <= math.ceil(SMALL[-1] / r) + 1 and not torch.isnan(o).any()
    # the pruned extractor keeps no attention heads or classifier
    assert not any('heads' in n or n.startswith('model.fc') for n, _ in model.named_parameters())


@pytest.mark.parametrize('name', MODELS)
def test_forward_intermediates(name):
    model = timm.create_model(name).eval()
    info = timm.models.FeatureInfo(model.feature_info, len(model.feature_info))
    x = torch.randn(1, *SMALL)
    final, intermediates = model.forward_intermediates(x, output_fmt='NCHW')
    assert len(intermediates) == len(info.channels()) >= 3
    for c, r, o in zip(info.channels(), info.reduction(), intermediates):
        assert o.shape[get_channel_dim('NCHW')] == c
        assert o.shape[get_spatial_dim('NCHW')[0]] <= math.ceil(SMALL[1] / r) + 1
    torch.testing.assert_close(final, model.forward_features(x))
    model.set_grad_checkpointing()
    final_ckpt, _ = model.forward_intermediates(x, output_fmt='NCHW')
    torch.testing.assert_close(final, final_ckpt, rtol=1e-4, atol=1e-5)


def _fx_model(model, train=False):
    tracer_kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    return create_feature_extractor(
        model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=tracer_kwargs)


@pytest.mark.parametrize('name', MODELS)
def test_fx_forward_and_backward(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, *SMALL)
    with torch.inference_mode():
        expected = model(x)
        traced = tuple(_fx_model(model)(x).values())[0]
    assert torch.equal(traced, expected)

    model = timm.create_model(name, num_classes=42).train()
    fx = _fx_model(model, train=True)
    out = tuple(fx(torch.randn(2, *SMALL)).values())[0]
    out.mean().backward()
    assert out.shape == (2, 42)
    assert all(p.grad is not None for p in fx.parameters())


@pytest.mark.parametrize('name', MODELS)
def test_group_matcher_covers_every_parameter(name):
    from timm.models import group_parameters
    model = timm.create_model(name)
    groups = group_parameters(model, model.group_matcher(coarse=True))
    names = [n for g in groups.values() for n in g]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    # trunk stem first, DAN's heads and classifier in the last group
    assert any(n.startswith('backbone.') for n in groups[min(groups)])
    assert {'fc.weight', 'heads.ca_fc1_weight'} <= set(groups[max(groups)])
