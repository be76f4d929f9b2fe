"""DAN architecture: parameter counts, the batched heads against the per-head paper math, official checkpoints."""
import math
import pickle

import pytest
import timm
import torch
import torch.nn.functional as F

import timm_dan
from tests.reference_dan import ReferenceDAN, official_checkpoint, randomize_
from timm_dan.models import dan as dan_module
from timm_dan.models.dan import CrossAttentionHeads
from timm_dan.models.official import OFFICIAL_LABEL_MAPS


def _converted(num_classes: int, dataset: str, seed: int = 0):
    ckpt = official_checkpoint(num_classes, seed)
    ref = ReferenceDAN(num_classes)
    ref.load_state_dict(ckpt['model_state_dict'])
    model = timm.create_model('dan_resnet18', num_classes=num_classes)
    model.load_state_dict(timm_dan.convert_official_checkpoint(ckpt, dataset), strict=True)
    return model, ref


@pytest.mark.parametrize('num_classes, expected', [(7, 19_723_733), (8, 19_724_248)])
def test_dan_resnet18_parameter_count(num_classes, expected):
    model = timm.create_model('dan_resnet18', num_classes=num_classes)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert sum(p.numel() for p in model.backbone.parameters()) == 11_176_512
    assert sum(p.numel() for p in model.heads.parameters()) == 4 * 2_135_904
    assert isinstance(model.neck, torch.nn.Identity)


def test_shapes_of_every_output():
    model = timm.create_model('dan_resnet18', num_classes=7).eval()
    x = torch.randn(3, 3, 64, 64)
    out = model.forward_train(x)
    assert isinstance(out, timm_dan.DANOutput)
    assert out.logits.shape == (3, 7)
    assert out.features.shape == (3, 512, 2, 2)
    assert out.heads.shape == (3, 4, 512)
    assert model.forward_attention(x).shape == (3, 4, 2, 2)
    torch.testing.assert_close(model(x), out.logits)
    # log-softmax across heads: per channel, the heads' probabilities sum to one
    torch.testing.assert_close(out.heads.exp().sum(1), torch.ones(3, 512))


def test_projection_for_wide_trunks():
    model = timm.create_model('dan_resnet50', num_classes=7, head_dim=256)
    assert model.num_features == model.head_hidden_size == 256
    assert model.neck.conv.in_channels == 2048 and model.neck.conv.out_channels == 256
    feats = model.forward_features(torch.randn(2, 3, 64, 64))
    assert feats.shape == (2, 256, 2, 2)
    assert model.heads.dim == 256 and model.fc.in_features == 256


@pytest.mark.parametrize('num_heads', [1, 2, 4])
@pytest.mark.parametrize('train', [False, True])
def test_batched_heads_equal_the_per_head_loop(num_heads, train):
    """Converted official weights: logits, features, fused heads and maps equal the naive module-per-head DAN."""
    ckpt = official_checkpoint(8, seed=1)
    ref = ReferenceDAN(8, num_heads=num_heads)
    state = {k: v for k, v in ckpt['model_state_dict'].items()
             if not k.startswith('cat_head') or int(k[8]) < num_heads}
    ref.load_state_dict(state)
    model = timm.create_model('dan_resnet18', num_classes=8, num_heads=num_heads)
    model.load_state_dict(timm_dan.convert_official_checkpoint(state, 'affectnet8', num_heads=num_heads))
    model.train(train)
    ref.train(train)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        logits, features, heads = ref.forward_train(x)
        out = model.forward_train(x)
        maps = model.forward_attention(x)
        ref_maps = ref.attention_maps(x)
    torch.testing.assert_close(out.features, features)
    torch.testing.assert_close(out.heads, heads, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.logits, logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(maps, ref_maps, rtol=1e-4, atol=1e-4)


def test_batched_heads_gradients_equal_the_per_head_loop():
    model, ref = _converted(8, 'affectnet8', seed=2)
    model.train()
    ref.train()
    # a fixed input: with 4 images of 1 x 1 maps the BatchNorms amplify float rounding by up to 3.5e-3 for some
    # draws of x (12 seeds measured), and the global RNG's state depends on which tests ran before
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 3, 5, 7])
    F.cross_entropy(model(x), target).backward()
    F.cross_entropy(ref(x), target).backward()
    # gradients agree to float32 rounding, judged against each tensor's own scale
    def close(ours, theirs):
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3 * theirs.abs().max().item())

    close(model.fc.weight.grad, ref.fc.weight.grad)
    for i in range(4):
        close(model.heads.conv_1x3.conv.weight.grad[i * 512:(i + 1) * 512],
              getattr(ref, f'cat_head{i}').sa.conv_1x3[0].weight.grad)
        close(model.heads.ca_fc2_weight.grad[i], getattr(ref, f'cat_head{i}').ca.attention[3].weight.grad)
    close(model.backbone.conv1.weight.grad, ref.features[0].weight.grad)


@pytest.mark.parametrize('split', [False, True])
def test_heads_equal_with_grouped_or_split_convs(split, monkeypatch):
    """The heads' grouped convs run group by group where that is faster (AVX2 CPUs): same outputs and gradients,
    and exported or traced graphs keep the one grouped conv."""
    monkeypatch.setattr(dan_module, 'split_grouped_convs', lambda: split)
    torch.manual_seed(0)
    heads = CrossAttentionHeads(dim=64, num_heads=4).train()
    x = torch.randn(3, 64, 5, 5).to(memory_format=torch.channels_last).requires_grad_()
    calls = []
    original = F.conv2d
    monkeypatch.setattr(dan_module.F, 'conv2d', lambda *a, **k: calls.append(1) or original(*a, **k))
    out = heads(x)
    assert len(calls) == (1 + 12 if split else 4)  # the reduce conv, then 3 branch convs x 4 heads or 3 grouped
    monkeypatch.setattr(dan_module.F, 'conv2d', original)
    out.square().sum().backward()
    with torch.no_grad():
        y = heads.reduce(x)
        expected = F.relu(sum(m.bn(m.conv(y)) for m in (heads.conv_3x3, heads.conv_1x3, heads.conv_3x1)))
    torch.testing.assert_close(heads.spatial_maps(x), expected.reshape(3, 4, 64, 5, 5).sum(2))
    grads = [p.grad.clone() for p in heads.parameters()]
    monkeypatch.setattr(dan_module, 'split_grouped_convs', lambda: not split)
    heads.zero_grad()
    torch.testing.assert_close(heads(x), out)
    heads(x).square().sum().backward()
    for ours, theirs in zip(grads, (p.grad for p in heads.parameters()), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    traced = torch.fx.symbolic_trace(heads.eval())
    convs = [n for n in traced.graph.nodes if n.op == 'call_module' and n.target.endswith('conv')]
    assert len(convs) == 4  # reduce and the three branch convs, each one module call


def test_rafdb_checkpoint_is_permuted_into_canonical_order():
    model, ref = _converted(7, 'rafdb', seed=3)
    model.eval()
    ref.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours, native = model(x), ref(x)
    # RAF-DB native order: surprise, fear, disgust, happiness, sadness, anger, neutral
    for native_idx, canonical_idx in enumerate(OFFICIAL_LABEL_MAPS['rafdb']):
        torch.testing.assert_close(ours[:, canonical_idx], native[:, native_idx], rtol=1e-4, atol=1e-4)
    assert timm_dan.LABELS[OFFICIAL_LABEL_MAPS['rafdb'][0]] == 'surprise'
    assert timm_dan.LABELS[OFFICIAL_LABEL_MAPS['rafdb'][6]] == 'neutral'
    # the logits BatchNorm statistics moved with the rows
    sd = official_checkpoint(7, seed=3)['model_state_dict']
    assert torch.equal(model.bn.running_mean[0], sd['bn.running_mean'][6])


def test_conversion_accepts_bare_state_dict_and_module_prefix():
    ckpt = official_checkpoint(7)
    bare = {f'module.{k}': v for k, v in ckpt['model_state_dict'].items()}
    a = timm_dan.convert_official_checkpoint(ckpt, 'affectnet7')
    b = timm_dan.convert_official_checkpoint(bare, 'affectnet7')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_conversion_names_missing_and_unexpected_keys():
    sd = dict(official_checkpoint(7)['model_state_dict'])
    del sd['cat_head2.ca.attention.3.weight']
    sd['extra.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"cat_head2\.ca\.attention\.3\.weight") as err:
        timm_dan.convert_official_checkpoint(sd, 'rafdb')
    assert 'extra.weight' in str(err.value)


def test_conversion_rejects_wrong_dataset_for_class_count():
    with pytest.raises(ValueError, match='7 classes but dataset=.affectnet8'):
        timm_dan.convert_official_checkpoint(official_checkpoint(7), 'affectnet8')
    with pytest.raises(ValueError, match='dataset must be one of'):
        timm_dan.convert_official_checkpoint(official_checkpoint(7), 'fer2013')


def test_authors_layout_through_timm_loader_is_refused(tmp_path):
    path = tmp_path / 'rafdb.pth'
    torch.save(official_checkpoint(7), path)
    with pytest.raises(ValueError, match='convert_official_checkpoint'):
        timm.create_model('dan_resnet18', num_classes=7, pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(path), hf_hub_id=None))


def test_authors_init_per_head():
    torch.manual_seed(0)
    heads = CrossAttentionHeads(512, 4)
    # kaiming normal, fan_out of ONE head's conv: 3x3 branch out 512 per head -> std sqrt(2 / (512 * 9))
    w = heads.conv_3x3.conv.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.02)
    assert heads.reduce.conv.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.02)
    assert heads.conv_1x3.conv.weight.std().item() == pytest.approx(math.sqrt(2 / (512 * 3)), rel=0.02)
    assert heads.ca_fc1_weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert heads.conv_3x3.conv.bias.abs().sum() == 0 and heads.ca_fc2_bias.abs().sum() == 0
    assert torch.equal(heads.conv_3x1.bn.weight, torch.ones(2048))


def test_reparameterize_equals_unfused_in_eval():
    model = randomize_(timm.create_model('dan_resnet18', num_classes=7), seed=4).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, maps = model(x), model.forward_attention(x)
        fused = timm.utils.reparameterize_model(model)
        assert fused.heads.fused is not None and model.heads.fused is None
        torch.testing.assert_close(fused(x), logits, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fused.forward_attention(x), maps, rtol=1e-4, atol=1e-4)
        assert model.reparameterize() is model and model.heads.fused is not None
    assert sum(p.numel() for p in fused.heads.parameters()) < sum(p.numel() for p in CrossAttentionHeads().parameters())


def test_bad_arguments_and_inputs_get_clear_errors():
    with pytest.raises(ValueError, match='num_heads must be >= 1'):
        timm.create_model('dan_resnet18', num_heads=0)
    with pytest.raises(ValueError, match="global_pool must be 'avg'"):
        timm.create_model('dan_resnet18', global_pool='max')
    with pytest.raises(ValueError, match='needs num_classes=0'):
        timm.create_model('dan_resnet18', num_classes=7, global_pool='')
    with pytest.raises(ValueError, match='head_dim must be divisible'):
        timm.create_model('dan_resnet50', head_dim=100)
    model = timm.create_model('dan_resnet18', num_classes=7).eval()
    with pytest.raises(RuntimeError, match='expected input.*to have 3 channels, but got 1'):
        model(torch.randn(1, 1, 64, 64))
    gray = timm.create_model('dan_resnet18', num_classes=7, in_chans=1).eval()
    assert gray(torch.randn(1, 1, 64, 64)).shape == (1, 7)


class _Payload:
    """A pickled object that a weights-only load must refuse (it would run code on unpickling)."""

    def __reduce__(self):
        return (print, ('executed',))


def test_backbone_init_from_a_local_torchvision_file(tmp_path):
    import torchvision
    tv = randomize_(torchvision.models.resnet18(), seed=5)
    path = tmp_path / 'resnet18_msceleb.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in tv.state_dict().items()}, 'epoch': 3}, path)
    model = timm.create_model('dan_resnet18', num_classes=7, backbone_pretrained=str(path))
    assert torch.equal(model.backbone.layer4[1].conv2.weight, tv.layer4[1].conv2.weight)
    assert torch.equal(model.backbone.bn1.running_var, tv.bn1.running_var)
    # the init path is a build-time argument: never recorded for re-creating the model
    assert 'backbone_pretrained' not in model._model_args and model._model_args['num_classes'] == 7

    bad = tmp_path / 'unsafe.pth'
    with bad.open('wb') as f:
        pickle.dump({'state_dict': _Payload()}, f)
    with pytest.raises(ValueError, match='Refusing to load .*unsafe.pth'):
        timm.create_model('dan_resnet18', backbone_pretrained=str(bad))

    wrong = tmp_path / 'resnet50.pth'
    torch.save(torchvision.models.resnet50().state_dict(), wrong)
    with pytest.raises(ValueError, match='does not fit the trunk'):
        timm.create_model('dan_resnet18', backbone_pretrained=str(wrong))
