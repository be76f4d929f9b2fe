"""Inference-only rewrite of a model in place: BatchNorm folding.

`fold_batchnorms` finds every eval-mode BatchNorm that directly follows a convolution or Linear layer by tracing
the model with `torch.fx` (timm's no-trace modules and functions kept as leaves) and folds it into that layer with
`torch.nn.utils.fusion`. The module tree keeps its structure and methods (`forward_features`, `forward_head`,
`heads.spatial_maps`, ...): each folded layer gets new weights, each folded BatchNorm becomes `nn.Identity()`,
and a timm `BatchNormAct2d` (norm + drop + activation) keeps its drop and activation.
"""
import logging
from collections import Counter

import torch
import torch.fx as fx
import torch.nn as nn
from timm.layers import BatchNormAct2d, get_notrace_functions, get_notrace_modules
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

__all__ = ['fold_batchnorms']

_logger = logging.getLogger(__name__)

# exact types only: a subclass may transform its weight (timm's StdConv2d standardises it), so a scaled weight
# would not scale its output
_FOLDABLE = {
    nn.Conv1d: (nn.BatchNorm1d,), nn.Conv2d: (nn.BatchNorm2d, BatchNormAct2d), nn.Conv3d: (nn.BatchNorm3d,),
    nn.Linear: (nn.BatchNorm1d,),
}


def _trace(model: nn.Module) -> fx.Graph:
    """The model's forward graph, with timm's no-trace modules and functions as leaves (as its fx helpers do)."""
    tracer = fx.Tracer(autowrap_functions=tuple(f for f in get_notrace_functions() if callable(f)))
    leaves = tuple(get_notrace_modules())
    default_is_leaf = tracer.is_leaf_module
    tracer.is_leaf_module = lambda m, name: isinstance(m, leaves) or default_is_leaf(m, name)
    return tracer.trace(model)


def _foldable_pairs(model: nn.Module, graph: fx.Graph) -> list[tuple[str, str]]:
    """(layer name, BatchNorm name) for each eval-mode BatchNorm whose input is the output of a conv/Linear layer
    that nothing else reads; both must be called once only (a shared module cannot change for one of its uses)."""
    modules = dict(model.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == 'call_module')
    pairs = []
    for node in graph.nodes:
        if node.op != 'call_module' or len(node.args) != 1 or node.kwargs or calls[node.target] != 1:
            continue
        source = node.args[0]
        if (not isinstance(source, fx.Node) or source.op != 'call_module' or len(source.users) != 1
                or calls[source.target] != 1):
            continue
        layer, bn = modules[source.target], modules[node.target]
        if type(bn) not in _FOLDABLE.get(type(layer), ()):
            continue
        channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        if bn.num_features == channels and not bn.training and not layer.training and bn.running_mean is not None:
            pairs.append((source.target, node.target))
    return pairs


@torch.no_grad()
def fold_batchnorms(model: nn.Module) -> int:
    """Fold each eval-mode BatchNorm that directly follows a conv or Linear layer into it, in place.

    Call it on a model in eval mode (the folded model computes the eval-mode function), after any structural
    re-parameterisation that reads the BatchNorms (e.g. `DAN.reparameterize()`). A model that `torch.fx` cannot
    trace is left unchanged (with a warning).

    Returns:
        The number of BatchNorms folded.
    """
    try:
        graph = _trace(model)
    except Exception as e:  # fx raises many kinds of errors on data-dependent Python control flow
        _logger.warning('BatchNorm folding skipped: torch.fx could not trace %s (%s: %s)',
                        type(model).__name__, type(e).__name__, e)
        return 0
    pairs = _foldable_pairs(model, graph)
    for layer_name, bn_name in pairs:
        layer, bn = model.get_submodule(layer_name), model.get_submodule(bn_name)
        fuse = fuse_linear_bn_weights if isinstance(layer, nn.Linear) else fuse_conv_bn_weights
        layer.weight, layer.bias = fuse(layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps,
                                        bn.weight, bn.bias)
        parent_name, _, attr = bn_name.rpartition('.')
        replacement = nn.Sequential(bn.drop, bn.act) if isinstance(bn, BatchNormAct2d) else nn.Identity()
        setattr(model.get_submodule(parent_name), attr, replacement.eval())
    return len(pairs)
