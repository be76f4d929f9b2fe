"""Valence/arousal and the calibration temperature at inference: FERPredictor, its results, `timm-dan predict` and
the ONNX export with its onnxruntime runner."""
import csv
import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from timm_dan.cli import main
from timm_dan.inference import FERPredictor, annotate_image, export_onnx
from timm_dan.inference.align import crop_face

from .conftest import INPUT_SIZE

TEMPERATURE = 2.5


@pytest.fixture(scope='module')
def va_model_dir(tmp_path_factory):
    """A random-weight 7-class dan_resnet18 with a valence/arousal head, calibrated (T = 2.5), saved as on the Hub."""
    torch.manual_seed(1)
    model = timm.create_model('dan_resnet18', num_classes=7, va_head=True,
                              pretrained_cfg_overlay=dict(input_size=(3, INPUT_SIZE, INPUT_SIZE)))
    model.train()
    with torch.no_grad():  # BatchNorm statistics of real activations: V/A spread over (-1, 1), not saturated
        for _ in range(3):
            model.forward_train(torch.randn(8, 3, INPUT_SIZE, INPUT_SIZE))
    path = tmp_path_factory.mktemp('va_model')
    timm.models.save_for_hf(model.eval(), path, safe_serialization=True,
                            model_config={'model_args': {'temperature': TEMPERATURE}})
    return path


@pytest.fixture(scope='module')
def va_model(va_model_dir):
    return timm.create_model(f'local-dir:{va_model_dir}', pretrained=True).eval()


def _faces(lfw_faces, n=3):
    return [(np.repeat(f[..., None], 3, 2) * 255 + .5).astype(np.uint8) for f in lfw_faces[:n]]


def _reference(model, face):
    """Raw logits and valence/arousal of one whole-image face, computed the plain way."""
    config = timm.data.resolve_model_data_config(model)
    crop = crop_face(face, np.array([0, 0, face.shape[1], face.shape[0]]), config['input_size'][1:][::-1], margin=0.)
    x = timm.data.create_transform(**config)(Image.fromarray(crop))[None]
    with torch.no_grad():
        logits, va = model.forward_with_va(x)
    return logits[0].numpy(), va[0].numpy()


def test_faces_get_valence_arousal_and_temperature_scaled_probabilities(va_model_dir, va_model, lfw_faces):
    predictor = FERPredictor(f'local-dir:{va_model_dir}', detector='none', precision='fp32')
    assert predictor.has_va and predictor.temperature == TEMPERATURE
    faces = _faces(lfw_faces)
    for face_image, result in zip(faces, predictor.predict(faces), strict=True):
        face = result.faces[0]
        logits, va = _reference(va_model, face_image)
        np.testing.assert_allclose(list(face.logits.values()), logits, atol=1e-4)  # raw logits kept
        np.testing.assert_allclose([face.valence, face.arousal], va, atol=1e-4)
        scaled = np.exp(logits / TEMPERATURE) / np.exp(logits / TEMPERATURE).sum()
        np.testing.assert_allclose(list(face.probs.values()), scaled, atol=1e-5)
        assert face.score == pytest.approx(scaled.max(), abs=1e-5) and face.label == face.top(1)[0][0]
        assert face.to_dict()['valence'] == face.valence and face.to_dict()['arousal'] == face.arousal
    assert len({round(r.faces[0].valence, 4) for r in predictor.predict(faces)}) == 3  # they vary per face

    raw = FERPredictor(f'local-dir:{va_model_dir}', detector='none', precision='fp32', temperature=1.0)
    face = raw.predict(faces[0])[0].faces[0]
    logits = np.array(list(face.logits.values()))
    np.testing.assert_allclose(list(face.probs.values()), np.exp(logits) / np.exp(logits).sum(), atol=1e-5)
    with pytest.raises(ValueError, match='temperature must be > 0'):
        FERPredictor(f'local-dir:{va_model_dir}', detector='none', temperature=0.0)


def test_a_model_without_va_head_or_temperature_is_as_before(model_name, lfw_faces):
    predictor = FERPredictor(model_name, detector='none', precision='fp32')
    assert not predictor.has_va and predictor.temperature == 1.0
    face = predictor.predict(_faces(lfw_faces, 1))[0].faces[0]
    assert face.valence is None and face.arousal is None and len(face.logits) == 7
    assert set(face.to_dict()) == {'box', 'landmarks', 'detection_score', 'label', 'score', 'probs'}


def test_tta_averages_valence_arousal_of_the_face_and_its_mirror(va_model_dir, lfw_faces):
    face = _faces(lfw_faces, 1)[0]
    plain = FERPredictor(f'local-dir:{va_model_dir}', detector='none', precision='fp32')
    both = [r.faces[0] for r in plain.predict([face, np.ascontiguousarray(face[:, ::-1])])]
    tta = FERPredictor(f'local-dir:{va_model_dir}', detector='none', tta=True, precision='fp32').predict(face)[0]
    got = tta.faces[0]
    assert got.valence == pytest.approx((both[0].valence + both[1].valence) / 2, abs=1e-5)
    assert got.arousal == pytest.approx((both[0].arousal + both[1].arousal) / 2, abs=1e-5)
    probs = (np.array(list(both[0].probs.values())) + list(both[1].probs.values())) / 2
    np.testing.assert_allclose(list(got.probs.values()), probs, atol=1e-5)


def test_annotated_image_shows_valence_and_arousal(va_model_dir, astronaut):
    predictor = FERPredictor(f'local-dir:{va_model_dir}', detector='none', precision='fp32')
    result = predictor.predict(astronaut, keep_images=True)[0]
    with_va = annotate_image(result)
    result.faces[0].valence = None
    without = annotate_image(result)
    # the label line is longer with " V+0.12 A-0.34": more pixels change right of the label
    changed = lambda img: (img != astronaut).any(2)[:20].sum()  # noqa: E731
    assert changed(with_va) > changed(without)


def test_cli_table_and_csv_carry_valence_arousal(va_model_dir, lfw_faces, tmp_path, capsys):
    paths = []
    for i, face in enumerate(_faces(lfw_faces, 2)):
        paths.append(str(tmp_path / f'face{i}.png'))
        Image.fromarray(face).save(paths[-1])
    out = tmp_path / 'out.csv'
    assert main(['predict', *paths, '--model', f'local-dir:{va_model_dir}', '--detector', 'none', '--csv',
                 str(out), '--precision', 'fp32']) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == ['file', 'face', 'label', 'score', 'det', 'valence', 'arousal', 'top-3']
    rows = list(csv.DictReader(out.open()))
    expected = FERPredictor(f'local-dir:{va_model_dir}', detector='none', precision='fp32').predict(paths)
    for row, result in zip(rows, expected, strict=True):
        assert float(row['valence']) == pytest.approx(result.faces[0].valence, abs=1e-5)
        assert float(row['arousal']) == pytest.approx(result.faces[0].arousal, abs=1e-5)
    out_json = tmp_path / 'out.json'
    assert main(['predict', paths[0], '--model', f'local-dir:{va_model_dir}', '--detector', 'none', '--json',
                 str(out_json), '--precision', 'fp32']) == 0
    face = json.loads(out_json.read_text())[0]['faces'][0]
    assert set(face) == {'box', 'landmarks', 'detection_score', 'label', 'score', 'probs', 'valence', 'arousal'}



def test_video_frames_carry_valence_arousal(va_model_dir, lfw_faces, tmp_path):
    import cv2
    face = cv2.resize(_faces(lfw_faces, 1)[0], (96, 96))
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 5, (96, 96))
    for _ in range(2):
        writer.write(cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    writer.release()
    out_json, out_csv = tmp_path / 'frames.json', tmp_path / 'frames.csv'
    for option, out in (('--json', out_json), ('--csv', out_csv)):
        assert main(['predict', str(video), '--video', '--model', f'local-dir:{va_model_dir}', '--detector', 'none',
                     option, str(out), '--precision', 'fp32']) == 0
    frames = json.loads(out_json.read_text())
    predictor = FERPredictor(f'local-dir:{va_model_dir}', detector='none', precision='fp32')
    expected = [f.faces[0] for f in predictor.predict_video(str(video))]
    assert [f['frame'] for f in frames] == [0, 1] and len(expected) == 2
    rows = list(csv.DictReader(out_csv.open()))
    for frame, row, result in zip(frames, rows, expected, strict=True):
        assert -1 <= frame['faces'][0]['valence'] <= 1 and -1 <= frame['faces'][0]['arousal'] <= 1
        assert frame['faces'][0]['valence'] == pytest.approx(result.valence, abs=1e-5)
        assert float(row['arousal']) == pytest.approx(result.arousal, abs=1e-5)


@pytest.mark.slow
def test_onnx_export_carries_valence_arousal_and_the_temperature(va_model, va_model_dir, lfw_faces, tmp_path,
                                                                 capsys):
    pytest.importorskip('onnxruntime')
    import onnxruntime as ort
    report = export_onnx(va_model, tmp_path / 'va.onnx', dynamic_batch=True)
    assert report.max_abs_diff < 1e-4 and report.max_abs_diff_va < 1e-4
    session = ort.InferenceSession(str(report.path))
    assert [o.name for o in session.get_outputs()] == ['logits', 'attention', 'valence_arousal']
    assert all(isinstance(o.shape[0], str) for o in session.get_outputs())  # every output's batch is dynamic
    x = torch.randn(3, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(3))
    logits, va = session.run(['logits', 'valence_arousal'], {'input': x.numpy()})
    with torch.no_grad():
        expected_logits, expected_va = va_model.forward_with_va(x)
    np.testing.assert_allclose(logits, expected_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(va, expected_va.numpy(), atol=1e-4)

    onnx_predictor = FERPredictor(str(report.path), detector='none', backend='onnxruntime')
    torch_predictor = FERPredictor(f'local-dir:{va_model_dir}', detector='none', precision='fp32')
    assert onnx_predictor.temperature == TEMPERATURE and onnx_predictor.has_va
    faces = _faces(lfw_faces)
    for got, expected in zip(onnx_predictor.predict(faces), torch_predictor.predict(faces), strict=True):
        a, b = got.faces[0], expected.faces[0]
        assert a.valence == pytest.approx(b.valence, abs=1e-4) and a.arousal == pytest.approx(b.arousal, abs=1e-4)
        np.testing.assert_allclose(list(a.probs.values()), list(b.probs.values()), atol=1e-4)

    assert main(['export', f'local-dir:{va_model_dir}', '--output', str(tmp_path / 'cli.onnx'),
                 '--no-attention']) == 0
    assert 'valence/arousal' in capsys.readouterr().out
    names = [o.name for o in ort.InferenceSession(str(tmp_path / 'cli.onnx')).get_outputs()]
    assert names == ['logits', 'valence_arousal']


def test_bf16_folding_also_folds_the_va_head(va_model):
    import copy

    from timm_dan.inference.predictor import _fold_va_head
    folded = copy.deepcopy(va_model)
    assert _fold_va_head(folded) == 1 and isinstance(folded.va_head.bn, torch.nn.Identity)
    assert _fold_va_head(folded) == 0  # nothing left
    x = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(folded.forward_with_va(x).valence_arousal, va_model.forward_with_va(x)[1],
                                   atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_int8_keeps_valence_arousal_and_the_temperature(va_model, va_model_dir, lfw_faces, tmp_path, capsys):
    """quantize_onnx keeps the valence_arousal output; FERPredictor on the int8 file (and precision='int8' on the
    torch model, and `timm-dan export --quantize int8`) still gives each face's valence and arousal."""
    pytest.importorskip('onnxruntime')
    import onnxruntime as ort

    from timm_dan.inference import quantize_onnx
    faces = _faces(lfw_faces, 8)
    folder = tmp_path / 'calibration'
    folder.mkdir()
    for i, face in enumerate(faces):
        Image.fromarray(face).save(folder / f'{i}.png')
    export_onnx(va_model, tmp_path / 'fp32.onnx', dynamic_batch=True)
    report = quantize_onnx(tmp_path / 'fp32.onnx', tmp_path / 'int8.onnx', folder)
    assert [o.name for o in ort.InferenceSession(str(report.path)).get_outputs()] == [
        'logits', 'attention', 'valence_arousal']
    reference = FERPredictor(f'local-dir:{va_model_dir}', detector='none', precision='fp32').predict(faces)
    for predictor in (FERPredictor(str(report.path), detector='none'),
                      FERPredictor(f'local-dir:{va_model_dir}', detector='none', precision='int8',
                                   calibration=str(folder))):
        assert predictor.runner.precision == 'int8' and predictor.has_va and predictor.temperature == TEMPERATURE
        for got, expected in zip(predictor.predict(faces), reference, strict=True):
            a, b = got.faces[0], expected.faces[0]
            assert -1 <= a.valence <= 1 and -1 <= a.arousal <= 1
            assert a.valence == pytest.approx(b.valence, abs=0.1) and a.arousal == pytest.approx(b.arousal, abs=0.1)

    assert main(['export', f'local-dir:{va_model_dir}', '--output', str(tmp_path / 'cli.int8.onnx'),
                 '--quantize', 'int8', '--calibration', str(folder)]) == 0
    assert 'quantized to int8' in capsys.readouterr().out
    cli = FERPredictor(str(tmp_path / 'cli.int8.onnx'), detector='none')
    assert cli.has_va and cli.predict(faces[:1])[0].faces[0].valence is not None
