"""Where an int8 conv would saturate on an AVX2 CPU (issue 12): the share of each conv's outputs in which a u8 x s8
pair sum leaves int16, with the weights as shipped and with 8-bit weights everywhere, on real inputs.

Without VNNI, onnxruntime's u8 x s8 kernels multiply bytes with `vpmaddubsw`, which adds the products of two
neighbouring elements of the reduction (input channels at one kernel tap, in NHWC order) in int16. A conv's uint8
input is stored as `x / scale + zero_point`: after a ReLU the zero point is 0 and most bytes are small; for a signed
tensor (the image the stem reads, the BatchNorm output the heads' 3x3 conv reads) the bytes sit around the zero point
(~114-128), so two products with 8-bit weights (2 x 255 x 127 > 32767) overflow often. `quantize_onnx` keeps 7-bit
weights (|q| <= 64) for exactly those convs (`seven_bit_weights`).

    python benchmarks/int8_saturation.py --model local-dir:runs/synthetic/best [--faces 16]

Quantizes the model as shipped (calibrated on 256 of the demo's train faces), reads every conv's uint8 input from
the graph on `--faces` validation faces and as many `lfw_subset()` crops, and recomputes each conv's pair sums in
int32 with its weights (7-bit ones rescaled to 8 bits for the second column).
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import machine  # noqa: E402
from benchmarks.int8_agreement import demo_faces, rgb  # noqa: E402
from timm_dan.cpu import machine_class  # noqa: E402
from timm_dan.inference import export_onnx, quantize_onnx  # noqa: E402
from timm_dan.inference.quantize import face_batches  # noqa: E402

INT16 = 2 ** 15


def conv_inputs(path: Path, batches: dict[str, np.ndarray]) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """Each conv of a QDQ graph (name, uint8 input tensor, its zero point, int8 weights, attributes) and, per named
    batch, the convs' uint8 inputs, read by making them graph outputs."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(path))
    graph = proto.graph
    value = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    convs = []
    for node in (n for n in graph.node if n.op_type == 'Conv'):
        x, w = producer[node.input[0]], producer[node.input[1]]
        convs.append({'name': node.name, 'input': x.input[0], 'zero_point': int(value[x.input[2]]),
                      'weights': value[w.input[0]].astype(np.int32),
                      **{a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}})
    outputs = {o.name for o in graph.output}
    for conv in convs:
        if conv['input'] not in outputs:
            outputs.add(conv['input'])
            graph.output.append(onnx.helper.make_tensor_value_info(conv['input'], onnx.TensorProto.UINT8, None))
    session = ort.InferenceSession(proto.SerializeToString(), providers=['CPUExecutionProvider'])
    names, feed = [o.name for o in session.get_outputs()], session.get_inputs()[0].name
    return convs, {key: dict(zip(names, session.run(None, {feed: batch}))) for key, batch in batches.items()}


def saturated_outputs(x: np.ndarray, weights: np.ndarray, conv: dict) -> float:
    """The share of the conv's outputs (channel x position x image) with at least one pair sum outside int16. The
    padding holds the zero point, as in QLinearConv."""
    groups, (kh, kw) = conv.get('group', 1), weights.shape[2:]
    pads, strides = conv.get('pads', [0, 0, 0, 0]), conv.get('strides', [1, 1])
    x = torch.nn.functional.pad(torch.from_numpy(x.astype(np.float32)), (pads[1], pads[3], pads[0], pads[2]),
                                value=float(conv['zero_point']))
    in_group, out_group = x.shape[1] // groups, weights.shape[0] // groups
    hit = total = 0
    for g in range(groups):
        cols = torch.nn.functional.unfold(x[:, g * in_group:(g + 1) * in_group], (kh, kw), stride=strides)
        n, _, positions = cols.shape  # reduction in NHWC order: kernel tap, then input channel
        cols = cols.view(n, in_group, kh * kw, positions).transpose(1, 2).reshape(n, -1, positions).to(torch.int32)
        w = torch.from_numpy(weights[g * out_group:(g + 1) * out_group]).permute(0, 2, 3, 1).reshape(out_group, -1)
        if w.shape[1] % 2:
            cols, w = torch.nn.functional.pad(cols, (0, 0, 0, 1)), torch.nn.functional.pad(w, (0, 1))
        for image in cols:
            products = image[None] * w[:, :, None]  # out channels x reduction x positions
            pairs = products[:, 0::2] + products[:, 1::2]
            hit += int(((pairs >= INT16) | (pairs < -INT16)).any(1).sum())
            total += pairs.shape[0] * pairs.shape[2]
    return hit / total


def main() -> None:
    import timm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='local-dir:runs/synthetic/best')
    parser.add_argument('--faces', type=int, default=16, help='validation faces and LFW crops each')
    args = parser.parse_args()
    faces, _, train = demo_faces()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = timm.create_model(args.model, pretrained=True).eval()
        export_onnx(model, tmp / 'fp32.onnx', dynamic_batch=True)
        quantize_onnx(tmp / 'fp32.onnx', tmp / 'int8.onnx', rgb(train.select(range(256))['image']))
        data_config = timm.data.resolve_model_data_config(model)  # what the export stores and calibration uses
        convs, inputs = conv_inputs(tmp / 'int8.onnx', {
            split: next(face_batches(images[:args.faces], data_config, args.faces)) for split, images in faces.items()})
    print(f'{machine()}, class {machine_class()}; {args.model}; share of outputs with a saturated pair sum')
    print(f'{"conv":16s} {"weights":18s} {"input zp":>8s} {"bits":>4s}  ' + '  '.join(
        f'{split + " shipped":>20s} {"8-bit":>8s}' for split in faces))
    for conv in convs:
        weights = conv['weights']
        peak = np.abs(weights).max(axis=(1, 2, 3), keepdims=True)
        eight_bit = np.round(weights * 127 / np.maximum(peak, 1)).astype(np.int32)
        shares = [saturated_outputs(tensors[conv['input']], w, conv) for tensors in inputs.values()
                  for w in (weights, eight_bit)]
        print(f'{conv["name"]:16s} {str(weights.shape):18s} {conv["zero_point"]:8d} {8 if peak.max() > 64 else 7:4d}  '
              + '  '.join(f'{shares[2 * i]:20.2e} {shares[2 * i + 1]:8.2e}' for i in range(len(faces))))


if __name__ == '__main__':
    main()
