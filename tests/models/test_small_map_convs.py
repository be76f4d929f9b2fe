"""Conv weight gradients as one matmul on small maps: the same outputs, the same gradients, only where it applies."""
import pytest
import timm
import torch
import torch.nn.functional as F

import timm_dan
from timm_dan.models import small_map_convs as module
from timm_dan.models.small_map_convs import MAX_OUTPUT_POSITIONS, resolve_small_map_convs, small_map_convs

ROUTED = '_Conv2dMatmulWeightGradBackward'


def _conv_and_grads(x, w, b, enabled, **kwargs):
    x, w = x.detach().requires_grad_(x.requires_grad), w.detach().requires_grad_()
    b = None if b is None else b.detach().requires_grad_()
    with small_map_convs(enabled):
        y = F.conv2d(x, w, b, **kwargs)
    torch.manual_seed(1)
    y.backward(torch.randn_like(y))
    grads = [t.grad for t in (x, w, b) if t is not None and t.requires_grad]
    return y, grads


@pytest.mark.parametrize('channels_last', [True, False])
@pytest.mark.parametrize('shape,kernel,stride,padding,bias,input_grad', [
    ((4, 16, 2, 2), (3, 3), 1, 1, True, True),      # layer4 of dan_resnet18 at 64 px
    ((4, 16, 4, 4), (3, 3), 2, 1, False, True),     # its first, strided conv
    ((4, 16, 2, 2), (1, 3), 1, (0, 1), True, True),  # the heads' 1x3 and 3x1
    ((4, 16, 2, 2), (3, 1), 1, (1, 0), True, False),  # an input that needs no gradient
    ((4, 16, 7, 7), (1, 1), 1, 0, False, True),
    ((4, 16, 5, 6), (1, 1), 2, 0, False, True),      # a strided 1x1 (downsample): its patches are a view
    ((4, 16, 3, 3), (1, 1), 1, 1, True, True),       # a padded 1x1
    ((3, 8, 5, 6), (3, 3), (1, 2), (1, 0), True, True),  # uneven maps, strides and paddings
])
def test_outputs_bit_equal_and_gradients_equal(channels_last, shape, kernel, stride, padding, bias, input_grad):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_(input_grad)
    w = torch.randn(24, shape[1], *kernel).contiguous(memory_format=fmt)
    b = torch.randn(24) if bias else None
    y_ref, grads_ref = _conv_and_grads(x, w, b, False, stride=stride, padding=padding)
    y, grads = _conv_and_grads(x, w, b, True, stride=stride, padding=padding)
    assert type(y.grad_fn).__name__ == ROUTED
    assert torch.equal(y, y_ref)
    assert len(grads) == len(grads_ref) == 1 + input_grad + bias
    for ours, theirs in zip(grads, grads_ref):
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())


@pytest.mark.parametrize('case', ['large map', 'grouped', 'dilated', 'same padding', 'no grad', 'bf16 autocast',
                                  'frozen weight', 'disabled'])
def test_other_convs_keep_the_library_kernel(case):
    side = 8 if case == 'large map' else 2  # 8 x 8 = 64 > MAX_OUTPUT_POSITIONS output positions
    assert (side * side > MAX_OUTPUT_POSITIONS) == (case == 'large map')
    x = torch.randn(2, 8, side, side, requires_grad=True)
    w = torch.randn(8, 4 if case == 'grouped' else 8, 3, 3, requires_grad=case != 'frozen weight')
    kwargs = {'padding': 'same' if case == 'same padding' else (2 if case == 'dilated' else 1),
              'dilation': 2 if case == 'dilated' else 1, 'groups': 2 if case == 'grouped' else 1}
    with small_map_convs(case != 'disabled'), torch.set_grad_enabled(case != 'no grad'), torch.autocast(
            'cpu', torch.bfloat16, enabled=case == 'bf16 autocast'):
        y = F.conv2d(x, w, **kwargs)
    assert y.grad_fn is None or type(y.grad_fn).__name__ != ROUTED
    with small_map_convs(True):  # a plain 3x3 conv on a 2 x 2 map beside it is routed: the check above can fail
        plain = F.conv2d(x[..., :2, :2], torch.randn(8, 8, 3, 3, requires_grad=True), padding=1)
    assert type(plain.grad_fn).__name__ == ROUTED


def test_chosen_per_machine(monkeypatch):
    for machine, expected in [('avx2', True), ('avx512', False), ('avx512_bf16', False), ('amx', False)]:
        monkeypatch.setattr(module, 'machine_class', lambda device=None, m=machine: m)
        assert resolve_small_map_convs() is expected
        assert resolve_small_map_convs(not expected) is (not expected)  # an explicit choice wins
    monkeypatch.undo()
    assert resolve_small_map_convs(None, torch.device('cuda')) is False
    x, w = torch.randn(1, 2, 2, 2), torch.randn(2, 2, 3, 3, requires_grad=True)
    monkeypatch.setattr(module, 'machine_class', lambda device=None: 'avx512')
    with small_map_convs():
        assert type(F.conv2d(x, w, padding=1).grad_fn).__name__ != ROUTED
    monkeypatch.setattr(module, 'machine_class', lambda device=None: 'avx2')
    with small_map_convs():
        assert type(F.conv2d(x, w, padding=1).grad_fn).__name__ == ROUTED


def test_dan_training_step_equal_with_and_without():
    """A whole `dan_resnet18` step at 64 px (its 2 x 2 layer4 and heads routed): equal loss, gradients to rounding."""
    torch.manual_seed(0)
    model = timm.create_model('dan_resnet18', num_classes=7).train().to(memory_format=torch.channels_last)
    loss_fn = timm_dan.DANLoss(7)
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    target = torch.tensor([0, 1, 2, 3])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    results = []
    for enabled in (False, True):
        model.load_state_dict(state)
        model.zero_grad()
        with small_map_convs(enabled):
            loss = loss_fn(model.forward_train(x), target)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_ref, grads_ref), (loss, grads) = results
    assert torch.equal(loss, loss_ref)
    assert grads.keys() == grads_ref.keys()
    scale = max(g.abs().max().item() for g in grads_ref.values())  # biases before a BatchNorm get only rounding
    for name, grad in grads.items():
        torch.testing.assert_close(grad, grads_ref[name], rtol=1e-3, atol=1e-5 * scale,
                                   msg=lambda m, n=name: f'{n}: {m}')
