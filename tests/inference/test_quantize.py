"""int8 inference: onnxruntime static quantization of our export, calibrated on real face crops, agrees with fp32."""
import json
import subprocess

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from timm_dan.inference import FERPredictor, export_onnx, quantize_onnx
from timm_dan.inference.predictor import ONNX_METADATA_KEY

pytest.importorskip('onnxruntime')
skimage_data = pytest.importorskip('skimage.data')


def _photos(indices) -> list[np.ndarray]:
    images = skimage_data.lfw_subset()
    return [(np.repeat(images[i][..., None], 3, 2) * 255 + .5).astype(np.uint8) for i in indices]


@pytest.fixture(scope='module')
def calibration_folder(tmp_path_factory):
    """40 LFW crops (faces and non-faces) as a user's folder of images, plus a file that is not an image."""
    folder = tmp_path_factory.mktemp('calibration')
    for i, photo in enumerate(_photos([*range(0, 20), *range(100, 120)])):
        Image.fromarray(photo).save(folder / f'face_{i:02d}.png')
    (folder / 'notes.txt').write_text('not an image')
    return folder


@pytest.fixture(scope='module')
def int8_onnx(trained_model, calibration_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp('int8')
    export_onnx(trained_model, folder / 'fp32.onnx', dynamic_batch=True)
    report = quantize_onnx(folder / 'fp32.onnx', folder / 'int8.onnx', calibration_folder)
    assert report.calibration_faces == 40
    return report.path


def test_int8_file_keeps_both_outputs_and_the_metadata(int8_onnx):
    import onnx
    proto = onnx.load(str(int8_onnx))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[ONNX_METADATA_KEY])
    assert meta['precision'] == 'int8' and meta['data_config']['input_size'] == [3, 64, 64]
    assert [o.name for o in proto.graph.output] == ['logits', 'attention']
    ops = {node.op_type for node in proto.graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops  # QDQ: the convolutions run in int8
    quantized_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(quantized_weights) >= 20  # the trunk's and the heads' conv weights


def test_int8_folds_each_conv_relu_into_the_conv_output_range(int8_onnx):
    """A ReLU after a conv is not left in float between a DequantizeLinear and a QuantizeLinear (that round trip
    was 12 % of an AVX2 int8 call): the conv's output is quantized over the ReLU's range, and max-pool runs on
    uint8 too."""
    import onnx
    graph = onnx.load(str(int8_onnx)).graph
    producer = {out: node for node in graph.node for out in node.output}
    relu_inputs = [producer[node.input[0]].op_type for node in graph.node if node.op_type == 'Relu']
    assert 'DequantizeLinear' not in relu_inputs and 'Conv' not in relu_inputs, relu_inputs
    pool, = [node for node in graph.node if node.op_type == 'MaxPool']
    assert producer[pool.input[0]].op_type == 'DequantizeLinear'


def test_int8_weights_keep_7_bits_only_where_a_conv_reads_a_signed_tensor(int8_onnx):
    """A conv whose uint8 input has a non-zero zero point (the stem's image, the heads' BatchNorm output) keeps
    7-bit weights (|q| <= 64: without VNNI its u8 x s8 pair sums would saturate 16 bits), every conv that reads a
    ReLU uses all 8, per output channel; on any CPU, so the file runs on any CPU."""
    import onnx
    graph = onnx.load(str(int8_onnx)).graph
    value = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    signed, unsigned = [], []
    for conv in (node for node in graph.node if node.op_type == 'Conv'):
        x, w = producer[conv.input[0]], producer[conv.input[1]]
        weights, scales = value[w.input[0]].astype(int), value[w.input[1]]
        assert scales.shape == (weights.shape[0],)  # per output channel
        (signed if value[x.input[2]] != 0 else unsigned).append(np.abs(weights).max())
    assert len(signed) == 2 and len(unsigned) == 20  # the stem and the heads' fused 3x3 conv; the trunk and 1x1
    assert set(signed) == {64}
    assert set(unsigned) == {0, 127}  # 0: a residual branch's last conv (zero-init BN, random trunk)


def test_int8_agrees_with_fp32_on_held_out_real_crops(trained_model, int8_onnx):
    """The bf16 test's method, on 32 LFW crops not used for calibration: the same class, probabilities close."""
    photos = _photos([*range(64, 80), *range(164, 180)])
    fp32 = FERPredictor(trained_model, detector='none', precision='fp32')
    int8 = FERPredictor(str(int8_onnx), detector='none', backend='onnxruntime')
    assert int8.runner.precision == 'int8'
    p32 = np.array([list(r.faces[0].probs.values()) for r in fp32.predict(photos)])
    p8 = np.array([list(r.faces[0].probs.values()) for r in int8.predict(photos)])
    assert (p32.argmax(1) == [1] * 16 + [0] * 16).mean() >= 0.75  # the probe works on held-out photos
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= 0.99 and np.abs(p8 - p32).mean() <= 0.01
    maps = int8.predict(photos[:2], attention=True)
    assert maps[0].faces[0].attention.shape == (4, 2, 2)


def test_predictor_int8_quantizes_a_torch_model_in_place(trained_model, calibration_folder):
    int8 = FERPredictor(trained_model, detector='none', precision='int8', calibration=calibration_folder)
    assert int8.runner.precision == 'int8' and int8.label_names == list(trained_model.pretrained_cfg['label_names'])
    result, = int8.predict(_photos([70]))
    assert result.faces[0].label in int8.label_names


def test_int8_errors_say_what_to_do(trained_model, tmp_path):
    with pytest.raises(ValueError, match="precision='int8' needs calibration face crops"):
        FERPredictor(trained_model, detector='none', precision='int8')
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
    with pytest.raises(ValueError, match=r'calibration .*empty: no readable images'):
        FERPredictor(trained_model, detector='none', precision='int8', calibration=tmp_path / 'empty')
    with pytest.raises(ValueError, match="calibration 'no-such-set' is neither a folder nor a FER data set"):
        FERPredictor(trained_model, detector='none', precision='int8', calibration='no-such-set')
    with pytest.raises(ValueError, match='compile=True needs'):
        FERPredictor(trained_model, detector='none', precision='int8', compile=True)
    torch.save({}, tmp_path / 'plain.onnx')
    not_ours = tmp_path / 'other.onnx'
    export_onnx(trained_model, not_ours)
    import onnx
    proto = onnx.load(str(not_ours))
    del proto.metadata_props[:]
    onnx.save(proto, str(not_ours))
    with pytest.raises(ValueError, match="has no 'timm_dan' metadata"):
        quantize_onnx(not_ours, tmp_path / 'q.onnx', tmp_path)


def test_calibration_spreads_over_a_large_folder_in_a_fixed_order(tmp_path):
    """A folder sorted by class gives crops of every class, not its first files; an unreadable file's place goes to
    a later one, and the same folder gives the same crops every time."""
    from timm_dan.inference.quantize import calibration_faces, spread_order
    assert spread_order(10, 4) == [0, 2, 5, 7, 1, 3, 4, 6, 8, 9]
    assert spread_order(3, 4) == [0, 1, 2]
    for label, value in (('a_neutral', 0), ('b_happy', 100), ('c_sad', 200)):
        (tmp_path / label).mkdir()
        for i in range(8):
            Image.fromarray(np.full((8, 8, 3), value + i, np.uint8)).save(tmp_path / label / f'{i}.png')
    (tmp_path / 'a_neutral' / '4.png').write_bytes(b'not a png')  # the 2nd of the spread: 0, 4, 8, 12, 16, 20 of 24
    faces = calibration_faces(tmp_path, limit=6)
    values = [int(face[0, 0, 0]) for face in faces]
    assert values == [0, 100, 104, 200, 204, 1]  # the first file that is not in the spread stands in for 4.png
    assert [int(f[0, 0, 0]) for f in calibration_faces(tmp_path, limit=6)] == values
    arrays = [np.full((4, 4, 3), i, np.uint8) for i in range(100)]
    assert [int(f[0, 0, 0]) for f in calibration_faces(arrays, limit=4)] == [0, 25, 50, 75]


def test_cli_export_quantize_then_predict_int8(trained_model, calibration_folder, tmp_path, capsys, subprocess_env,
                                               python):
    from timm_dan.cli import main
    folder = tmp_path / 'probe'
    timm.models.save_for_hf(trained_model, folder, safe_serialization=True)
    output = tmp_path / 'out' / 'dan.int8.onnx'
    assert main(['export', f'local-dir:{folder}', '--output', str(output), '--quantize', 'int8',
                 '--calibration', str(calibration_folder)]) == 0
    out = capsys.readouterr().out
    assert 'exported local-dir:' in out and 'quantized to int8 -> ' + str(output) in out
    assert 'calibrated on 40 faces' in out and 'top-1 agreement' in out
    assert sorted(p.name for p in output.parent.iterdir()) == ['dan.int8.onnx']  # the fp32 file was temporary
    assert FERPredictor(str(output), detector='none').runner.precision == 'int8'
    photos = tmp_path / 'photos'
    photos.mkdir()
    for i, photo in enumerate(_photos([70, 170])):
        Image.fromarray(photo).save(photos / f'{i}.png')
    proc = subprocess.run([python, '-m', 'timm_dan', 'predict', str(photos), '--model', str(output), '--detector',
                           'none', '--precision', 'int8', '--threads', '1', '--json', str(tmp_path / 'p.json')],
                          capture_output=True, text=True, env=subprocess_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [r['faces'][0]['label'] for r in json.loads((tmp_path / 'p.json').read_text())] == ['happy', 'neutral']


@pytest.mark.parametrize('args, message', [
    (['--precision', 'int8'], '--precision int8 needs --calibration DIR'),
    (['--calibration', 'faces/'], '--calibration is for --precision int8'),
    (['--threads', '0'], 'argument --threads: must be 1 or more'),
])
def test_cli_int8_usage_errors(args, message, capsys):
    from timm_dan.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(['predict', 'x.jpg', '--model', 'dan_resnet18', *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
