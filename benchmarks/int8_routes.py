"""The two int8 routes for CPUs without bf16, side by side: onnxruntime static QDQ (what timm-dan ships,
`precision='int8'`) and PyTorch's PT2E flow with torchao's X86InductorQuantizer (then torch.compile).

    PYTHONPATH=. python benchmarks/int8_routes.py [--batch-size 32] [--rounds 5]

Both are calibrated on the same real face crops (scikit-image's LFW subset) and timed in interleaved rounds
against the eager fp32 model. PT2E needs `pip install torchao`; it is tried on the predictor's two-output graph
(logits and attention maps) first, then on logits alone, and each failure is printed, not raised.
"""
import argparse
import time

import numpy as np
import timm
import torch

import timm_dan  # noqa: F401
from benchmarks.harness import interleaved_medians, machine
from benchmarks.sections.infer import lfw_faces
from timm_dan.inference import FERPredictor
from timm_dan.inference.export import LogitsAndAttention
from timm_dan.inference.quantize import face_batches


def pt2e_model(model: torch.nn.Module, calibration: list[np.ndarray], attention: bool) -> torch.nn.Module:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    wrapper = LogitsAndAttention(timm.utils.reparameterize_model(model), attention).eval()
    batches = list(face_batches(calibration, timm.data.resolve_model_data_config(model)))
    example = torch.from_numpy(batches[0])
    exported = torch.export.export(wrapper, (example,), dynamic_shapes=(
        {0: torch.export.Dim('batch', min=1, max=256)},)).module()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    for batch in batches:
        prepared(torch.from_numpy(batch))
    return torch.compile(convert_pt2e(prepared))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()
    print(machine())
    torch.manual_seed(0)
    model = timm.create_model('dan_resnet18', num_classes=8).eval()
    faces = lfw_faces()
    fp32 = FERPredictor(model, detector='none', precision='fp32').runner
    start = time.perf_counter()
    ort_int8 = FERPredictor(model, detector='none', precision='int8', calibration=faces).runner
    print(f'onnxruntime QDQ: exported and quantized in {time.perf_counter() - start:.0f} s')
    contenders = {'eager fp32 (precision=fp32)': lambda x: fp32(x, True),
                  'onnxruntime int8 (precision=int8)': lambda x: ort_int8(x, True)}
    for attention in (True, False):
        try:
            start = time.perf_counter()
            compiled = pt2e_model(model, faces, attention)
            with torch.no_grad():
                compiled(torch.randn(args.batch_size, 3, 224, 224))
            print(f'PT2E ({"logits + attention" if attention else "logits only"}): prepared, calibrated and '
                  f'compiled in {time.perf_counter() - start:.0f} s')
            contenders[f'PT2E int8 + torch.compile ({"with" if attention else "no"} attention)'] = (
                lambda x, c=compiled: c(torch.from_numpy(x)))
            break
        except Exception as e:  # torchao missing, or its quantizer refusing the graph
            print(f'PT2E ({"logits + attention" if attention else "logits only"}) failed: {type(e).__name__}: {e}')
    for batch_size in (args.batch_size, 1):
        x = np.random.default_rng(0).standard_normal((batch_size, 3, 224, 224), dtype=np.float32)
        with torch.no_grad():
            seconds = interleaved_medians({k: (lambda f=f, x=x: f(x)) for k, f in contenders.items()},
                                          args.rounds * (1 if batch_size > 1 else 4), lambda: None)
        base = seconds['eager fp32 (precision=fp32)']
        print(f'batch {batch_size}: ' + ', '.join(f'{k} {batch_size / v:.1f} img/s (x{base / v:.2f})'
                                                  for k, v in seconds.items()))


if __name__ == '__main__':
    main()
