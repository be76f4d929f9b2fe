"""One precision vocabulary: what 'auto' resolves to, and Accelerate's names for it."""
import pytest
import torch

import timm_dan.precision as precision


@pytest.mark.parametrize('native, expected', [(True, 'bf16'), (False, 'fp32')])
def test_auto_is_bf16_only_where_native(native, expected, monkeypatch):
    monkeypatch.setattr(precision, 'bf16_supported', lambda device: native)
    monkeypatch.delenv('ACCELERATE_MIXED_PRECISION', raising=False)
    assert precision.resolve_precision('auto', torch.device('cpu')) == expected
    assert precision.accelerate_mixed_precision('auto') == ('bf16' if native else 'no')


def test_explicit_values_and_the_launchers_choice(monkeypatch):
    monkeypatch.setenv('ACCELERATE_MIXED_PRECISION', 'fp16')
    assert precision.accelerate_mixed_precision('auto') == 'fp16'  # `accelerate launch --mixed_precision fp16`
    assert precision.accelerate_mixed_precision('fp32') == 'no'  # an explicit value wins
    assert [precision.resolve_precision(p) for p in ('fp32', 'bf16', 'fp16')] == ['fp32', 'bf16', 'fp16']


def test_unknown_or_unoffered_precision_is_an_error():
    with pytest.raises(ValueError, match='precision must be one of auto, fp32, bf16, fp16, got .fp8.'):
        precision.resolve_precision('fp8')
    with pytest.raises(ValueError, match='precision must be one of auto, fp32, bf16, got .fp16.'):
        precision.check_precision('fp16', ('auto', 'fp32', 'bf16'))
