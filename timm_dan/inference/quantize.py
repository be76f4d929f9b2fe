"""int8 inference for CPUs without fast bf16: post-training static quantization of our ONNX export with
onnxruntime (QDQ: per-channel int8 weights and uint8 activations of every convolution), calibrated on face crops.

Only the convolutions (almost all of DAN's FLOPs), their ReLUs and max-pool run in int8: quantizing the channel
attention's small matmuls and the classifier as well moved the top-1 class of 6 % of held-out LFW crops (mean |dp|
0.009), convolutions alone none (0.004). Without VNNI (AVX2 CPUs) onnxruntime's u8 x s8 kernels add the products of
two neighbouring inputs in 16 bits, which saturates for inputs stored near 255 by any weight over 7 bits: there the
convolutions that read a signed tensor (the stem reads the normalised image, the heads' 3x3 conv a BatchNorm output;
its zero sits at uint8 ~128) keep 7-bit weights, and those that read a ReLU's output (stored near 0) use all 8. The
choice does not depend on the CPU that quantizes: a file quantized on a VNNI server runs as well on an AVX2 laptop.

Static quantization fixes each activation's int8 range ahead of time from calibration data, so the calibration
images should look like what the model will see: face crops, as a folder of images or a FER data set. The
quantized file keeps every output (logits, the heads' attention maps, valence/arousal for a model with a V/A head)
and the `timm_dan` metadata (labels, data config, calibration temperature), so `FERPredictor(path)` runs it like any
export.

    from timm_dan.inference import export_onnx, quantize_onnx
    export_onnx(model, 'dan.onnx', dynamic_batch=True)
    report = quantize_onnx('dan.onnx', 'dan.int8.onnx', calibration='faces/')
"""
import contextlib
import io
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import timm
from PIL import Image

from .align import crop_face
from .io import ImageLoadError, expand_inputs, load_image
from .predictor import ONNX_METADATA_KEY

__all__ = ['QuantizeReport', 'calibration_faces', 'face_batches', 'quantize_onnx']

QUANTIZED_OPS = ('Conv', 'Relu', 'MaxPool')
"""The op types `quantize_onnx` runs in int8 (`benchmarks/int8_graph.py` measures them against 'Conv' alone)."""

CALIBRATION_LIMIT = 256
"""Face crops used for calibration by default: enough for stable ranges, a few seconds to run."""

Calibration = Union[str, Path, Sequence[np.ndarray]]
"""A folder of face images, a FER data set name ('synthetic', or 'NAME' with `data_dir`), or RGB arrays."""


@dataclass
class QuantizeReport:
    path: Path
    calibration_faces: int
    seconds: float


def calibration_faces(source: Calibration, data_dir: Optional[Union[str, Path]] = None,
                      limit: int = CALIBRATION_LIMIT) -> list[np.ndarray]:
    """Up to `limit` RGB uint8 face crops from a folder (searched recursively for image files), a FER data set
    (its validation split, else its first split), or a sequence of arrays. From a larger source the crops are spread
    evenly over it (`spread_order`), not its first ones: a folder or data set sorted by class or by subject
    calibrates on all of them. Unreadable files are skipped (later ones stand in); no face at all is a ValueError
    that names the source."""
    if not isinstance(source, (str, Path)):
        images = list(source)
        faces = [load_image(images[i]) for i in spread_order(len(images), limit)[:limit]]
    elif Path(source).is_dir():
        items = expand_inputs(source)
        faces = []
        for i in spread_order(len(items), limit):
            try:
                faces.append(load_image(items[i].source))
            except ImageLoadError:
                continue
            if len(faces) == limit:
                break
    else:
        faces = _data_set_faces(str(source), data_dir, limit)
    if not faces:
        raise ValueError(f'calibration {source!s}: no readable images (expected face crops as image files, e.g. '
                         f'.jpg/.png, in that folder, or a FER data set name)')
    return faces


def spread_order(count: int, limit: int) -> list[int]:
    """`range(count)` in the order calibration reads it: `limit` indices evenly spaced over it first (0,
    count/limit, 2 count/limit, ...), then the others in order (stand-ins for unreadable files)."""
    if count <= limit:
        return list(range(count))
    picked = np.linspace(0, count, limit, endpoint=False).astype(int).tolist()
    return picked + sorted(set(range(count)).difference(picked))


def _data_set_faces(name: str, data_dir: Optional[Union[str, Path]], limit: int) -> list[np.ndarray]:
    from ..data import FER_DATASETS, load_fer_dataset  # only for this way of calibrating (loads `datasets`)
    if name not in FER_DATASETS:
        raise ValueError(f'calibration {name!r} is neither a folder nor a FER data set; data sets: '
                         f'{", ".join(sorted(FER_DATASETS))}')
    data = load_fer_dataset(name, data_dir)
    split = data['validation'] if 'validation' in data else data[next(iter(data))]
    images = split.select(spread_order(len(split), limit)[:limit])['image']
    return [np.asarray(image.convert('RGB')) for image in images]


def face_batches(faces: Sequence[np.ndarray], data_config: dict[str, Any], batch_size: int = 32
                 ) -> Iterator[np.ndarray]:
    """Face crops as the model's float32 input batches: each whole crop resized to the input size (as detector
    'none' does in `FERPredictor`) and normalised by timm's eval transform."""
    _, height, width = data_config['input_size']
    transform = timm.data.create_transform(**data_config, is_training=False)
    for start in range(0, len(faces), batch_size):
        crops = [crop_face(face, np.array([0, 0, face.shape[1], face.shape[0]], dtype=np.float32), (width, height),
                           margin=0.) for face in faces[start:start + batch_size]]
        yield np.stack([transform(Image.fromarray(crop)).numpy() for crop in crops])


def seven_bit_weights(graph: Any) -> list[str]:
    """The weights of the convolutions in an ONNX graph whose input may be negative: not a ReLU's output (through
    max-pools). Quantized to uint8, such an input is stored around its zero point (the image's is ~114), so without VNNI
    an 8-bit weight saturates the 16-bit sum of two products (2 x 255 x 127 > 32767); a ReLU's output sits near 0."""
    producer = {out: node for node in graph.node for out in node.output}

    def non_negative(tensor: str) -> bool:
        node = producer.get(tensor)  # None: a graph input
        if node is None or node.op_type not in ('Relu', 'MaxPool'):
            return False
        return node.op_type == 'Relu' or non_negative(node.input[0])

    return [node.input[1] for node in graph.node if node.op_type == 'Conv' and not non_negative(node.input[0])]


def quantize_onnx(
        model_path: Union[str, Path],
        output: Union[str, Path],
        calibration: Calibration,
        *,
        data_dir: Optional[Union[str, Path]] = None,
        limit: int = CALIBRATION_LIMIT,
        per_channel: bool = True,
        op_types: Sequence[str] = QUANTIZED_OPS,
) -> QuantizeReport:
    """Quantize an ONNX file written by `export_onnx` to int8 (onnxruntime static QDQ), calibrated on face crops.

    The convolutions' weights are int8 per output channel (7 bits where the conv reads a signed tensor, so that CPUs
    without VNNI do not saturate: `seven_bit_weights`), their inputs uint8 per tensor
    (ranges from the 99.999th percentile over the calibration faces: MinMax moved 1.5 % of a demo model's top-1
    classes, the percentile 0.8 %). A ReLU after a conv is folded into the range of the conv's output and
    max-pool runs on uint8, so no activation of the trunk goes back to float between two convs (on AVX2 that round
    trip was 12 % of the call). The attention heads' reductions and the fusion stay float32, the outputs too
    (`op_types` chooses other onnxruntime op types). The file's `timm_dan` metadata is kept, with
    `"precision": "int8"`. A file onnxruntime cannot quantize is a ValueError that names it.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model_path, output = Path(model_path), Path(output)
    proto = onnx.load(str(model_path), load_external_data=False)
    meta_props = {p.key: p.value for p in proto.metadata_props}
    if ONNX_METADATA_KEY not in meta_props:
        raise ValueError(f'{model_path} has no {ONNX_METADATA_KEY!r} metadata: export it with `timm-dan export`')
    meta = json.loads(meta_props[ONNX_METADATA_KEY])
    data_config = {**meta['data_config'], 'input_size': tuple(meta['data_config']['input_size'])}
    faces = calibration_faces(calibration, data_dir, limit)
    # batches of one size: the percentile calibrator stacks each tensor's batches
    batches = list(face_batches(faces, data_config, max(d for d in range(1, 33) if len(faces) % d == 0)))
    input_name = proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self) -> Optional[dict[str, np.ndarray]]:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    start = time.perf_counter()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / 'prepared.onnx'
        try:
            quant_pre_process(str(model_path), str(prepared))
            overrides = {weight: [{'reduce_range': True, **({'axis': 0} if per_channel else {})}]
                         for weight in seven_bit_weights(onnx.load(str(prepared)).graph)}
            with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrator prints its progress
                quantize_static(str(prepared), str(Path(tmp) / 'int8.onnx'), Reader(), quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=list(op_types), per_channel=per_channel,
                                calibrate_method=CalibrationMethod.Percentile,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                extra_options={'TensorQuantOverrides': overrides})
        except Exception as e:  # onnxruntime's quantizer raises many kinds of errors on graphs it cannot handle
            raise ValueError(f'onnxruntime could not quantize {model_path}: {type(e).__name__}: {e}') from e
        quantized = onnx.load(str(Path(tmp) / 'int8.onnx'))
    onnx.helper.set_model_props(quantized, {**meta_props, ONNX_METADATA_KEY: json.dumps({**meta,
                                                                                          'precision': 'int8'})})
    onnx.save(quantized, str(output))
    return QuantizeReport(output, sum(len(b) for b in batches), time.perf_counter() - start)
