"""ONNX export of DAN (logits, optionally the heads' attention maps, and valence/arousal for a model with a V/A head),
checked against PyTorch with onnxruntime."""
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import timm
import torch
import torch.nn as nn

from .predictor import ONNX_METADATA_KEY, label_names_of

__all__ = ['export_onnx', 'ExportReport', 'LogitsAndAttention']


class LogitsAndAttention(nn.Module):
    """Exports a DAN with its outputs in this order: logits (B x K), the heads' spatial maps (B x H x h x w) with
    `attention`, and valence/arousal (B x 2) with `valence_arousal`."""

    def __init__(self, model: nn.Module, attention: bool = True, valence_arousal: bool = False):
        super().__init__()
        self.model, self.attention, self.valence_arousal = model, attention, valence_arousal

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, tuple[torch.Tensor, ...]]:
        features = self.model.forward_features(x)
        if self.valence_arousal:
            logits, va = self.model.forward_head_with_va(features)
        else:
            logits, va = self.model.forward_head(features), None
        outputs = (logits,) + ((self.model.heads.spatial_maps(features),) if self.attention else ()) + (
            (va,) if va is not None else ())
        return outputs if len(outputs) > 1 else logits


@dataclass
class ExportReport:
    path: Path
    max_abs_diff: float  # logits, onnxruntime vs eager PyTorch on random inputs
    max_abs_diff_attention: Optional[float]
    input_size: tuple[int, int, int]
    dynamic_batch: bool
    max_abs_diff_va: Optional[float] = None  # valence/arousal, for a model with a V/A head


def export_onnx(
        model: nn.Module,
        output: Union[str, Path],
        opset: int = 18,
        dynamic_batch: bool = True,
        attention: bool = True,
        reparameterize: bool = True,
        check_batch: int = 2,
        seed: int = 0,
) -> ExportReport:
    """Export `model` (a DAN) to ONNX and compare onnxruntime's outputs with PyTorch's on random inputs.

    The model is copied, put in eval mode and (by default) reparameterized first. The file's metadata holds the
    label names, data config and calibration temperature under `timm_dan`, so `FERPredictor(path,
    backend='onnxruntime')` can run it. A model with a valence/arousal head gets a `valence_arousal` output (B x 2).
    The batch dimension of every output is dynamic (as in timm's `onnx_export`); with `dynamic_batch=False` it is
    fixed to 1.
    """
    import onnx
    import onnxruntime as ort

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval()
    if reparameterize:
        model = timm.utils.reparameterize_model(model, inplace=True)
    data_config = timm.data.resolve_model_data_config(model)
    input_size = tuple(data_config['input_size'])
    has_va = getattr(model, 'has_va', False)
    wrapper = LogitsAndAttention(model, attention, has_va).eval()
    batch = 2 if dynamic_batch else 1
    example = torch.randn(batch, *input_size)
    output_names = ['logits'] + (['attention'] if attention else []) + (['valence_arousal'] if has_va else [])
    dynamic_shapes = ({0: torch.export.Dim('batch', min=1, max=4096)},) if dynamic_batch else None
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper, (example,), input_names=['input'], output_names=output_names, opset_version=opset,
            dynamic_shapes=dynamic_shapes, dynamo=True, verbose=False,
        )
    proto = program.model_proto
    written = next(o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx'))
    if written != opset:  # torch keeps opset 18 when onnx's converter cannot go down to the one asked
        raise ValueError(f'the exporter could not convert the graph to opset {opset} (it wrote {written}): use '
                         f'{written} or an opset it converts to (16 and up)')
    meta = {
        'label_names': label_names_of(model),
        'data_config': {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        'architecture': getattr(model, 'pretrained_cfg', {}).get('architecture'),
        'attention': attention,
        'valence_arousal': has_va,
        'temperature': getattr(model, 'temperature', None),
    }
    onnx.helper.set_model_props(proto, {ONNX_METADATA_KEY: json.dumps(meta)})
    onnx.save(proto, str(output))
    onnx.checker.check_model(str(output))

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(check_batch if dynamic_batch else 1, *input_size, generator=generator)
    with torch.no_grad():
        expected = wrapper(x)
    expected = expected if len(output_names) > 1 else (expected,)
    session = ort.InferenceSession(str(output), providers=['CPUExecutionProvider'])
    got = session.run(output_names, {'input': x.numpy()})
    diffs = {name: float(np.abs(g - e.numpy()).max()) for name, g, e in zip(output_names, got, expected, strict=True)}
    return ExportReport(output, diffs['logits'], diffs.get('attention'), input_size, dynamic_batch,
                        diffs.get('valence_arousal'))
