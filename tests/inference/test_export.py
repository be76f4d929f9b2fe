"""Reparameterization, ONNX export (parity with PyTorch) and the onnxruntime backend of FERPredictor."""
import copy
import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from timm_dan.inference import FERPredictor, export_onnx
from timm_dan.inference.predictor import ONNX_METADATA_KEY

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')


def test_reparameterize_keeps_outputs_and_attention(eval_model):
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for fold in (lambda m: m.reparameterize(), lambda m: timm.utils.reparameterize_model(m, inplace=True)):
        fused = fold(copy.deepcopy(eval_model))
        assert fused.heads.fused is not None and isinstance(fused.heads.conv_1x3, torch.nn.Identity)
        with torch.no_grad():
            torch.testing.assert_close(fused(x), eval_model(x), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(fused.forward_attention(x), eval_model.forward_attention(x),
                                       atol=1e-4, rtol=1e-4)
    assert eval_model.heads.fused is None  # the copies were folded, not the original


@pytest.fixture(scope='module')
def dynamic_onnx(eval_model, tmp_path_factory):
    path = tmp_path_factory.mktemp('onnx') / 'dan.onnx'
    return export_onnx(eval_model, path)  # dynamic batch by default, as timm's onnx_export


@pytest.mark.slow
def test_onnx_export_matches_the_unfused_model(dynamic_onnx, eval_model):
    import onnxruntime as ort
    report = dynamic_onnx
    assert report.dynamic_batch and report.max_abs_diff < 1e-4 and report.max_abs_diff_attention < 1e-3
    proto = onnx.load(str(report.path))
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value, batch  # a named symbolic dimension, not a number
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[ONNX_METADATA_KEY])
    assert meta['label_names'] == list(eval_model.pretrained_cfg['label_names'])
    assert meta['data_config']['input_size'] == [3, 64, 64] and meta['attention'] is True
    # the file holds the reparameterized heads; compare with the original, unfused eager model at batch 5
    x = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    logits, maps = ort.InferenceSession(str(report.path)).run(['logits', 'attention'], {'input': x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, eval_model(x).numpy(), atol=1e-4)
        np.testing.assert_allclose(maps, eval_model.forward_attention(x).numpy(), atol=1e-3, rtol=1e-4)


@pytest.mark.slow
def test_onnxruntime_predictor_matches_torch(dynamic_onnx, haar_predictor, astronaut, lfw_faces):
    ort_predictor = FERPredictor(str(dynamic_onnx.path), detector='haar', backend='onnxruntime')
    assert ort_predictor.label_names == haar_predictor.label_names
    inputs = [astronaut, *(np.repeat(f[..., None], 3, 2) for f in lfw_faces[:2])]
    got = ort_predictor.predict(inputs, attention=True)
    expected = haar_predictor.predict(inputs, attention=True)
    assert [len(r.faces) for r in got] == [len(r.faces) for r in expected]
    for a, b in zip(got, expected, strict=True):
        for fa, fb in zip(a.faces, b.faces, strict=True):
            assert fa.box == fb.box and fa.label == fb.label
            np.testing.assert_allclose(list(fa.probs.values()), list(fb.probs.values()), atol=1e-4)
            np.testing.assert_allclose(fa.attention, fb.attention, atol=1e-2, rtol=1e-3)
    with pytest.raises(ValueError, match='needs the path of an exported .onnx file'):
        FERPredictor(torch.nn.Linear(2, 2), backend='onnxruntime')


def test_an_onnx_path_is_a_model_like_any_other(dynamic_onnx, astronaut, tmp_path):
    explicit = FERPredictor(str(dynamic_onnx.path), detector='haar', backend='onnxruntime')
    for model in (str(dynamic_onnx.path), dynamic_onnx.path):  # a str or a Path: onnxruntime by the suffix
        predictor = FERPredictor(model, detector='haar')
        assert predictor.backend == 'onnxruntime' and repr(predictor).startswith(
            f"FERPredictor(model='{dynamic_onnx.path}', backend='onnxruntime', precision='fp32', classes=7, "
            "input_size=(3, 64, 64)")
        face, = predictor.predict(astronaut)[0].faces
        assert face.probs == explicit.predict(astronaut)[0].faces[0].probs
    with pytest.raises(FileNotFoundError, match=f'{tmp_path / "none.onnx"}: no such file'):
        FERPredictor(tmp_path / 'none.onnx')
    with pytest.raises(ValueError, match="is an ONNX file: it runs with backend='onnxruntime'"):
        FERPredictor(dynamic_onnx.path, backend='torch')


@pytest.mark.slow
def test_export_cli_fixed_batch_logits_only(model_name, subprocess_env, python, tmp_path, lfw_faces):
    import subprocess
    output = tmp_path / 'fixed.onnx'
    proc = subprocess.run(
        [python, '-m', 'timm_dan', 'export', model_name, '--format', 'onnx', '--output', str(output),
         '--opset', '18', '--no-attention', '--static-batch'],
        capture_output=True, text=True, env=subprocess_env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'input 1x3x64x64' in proc.stdout
    diff = float(proc.stdout.split('max abs diff: logits ')[1].split()[0].rstrip(','))
    assert diff < 1e-4
    # a fixed batch of 1: the predictor feeds the 3 faces one at a time
    faces = [np.repeat(f[..., None], 3, 2) for f in lfw_faces[:3]]
    ort_predictor = FERPredictor(str(output), detector='none', backend='onnxruntime')
    torch_predictor = FERPredictor(model_name, detector='none', precision='fp32')
    for a, b in zip(ort_predictor.predict(faces), torch_predictor.predict(faces), strict=True):
        np.testing.assert_allclose(list(a.faces[0].probs.values()), list(b.faces[0].probs.values()), atol=1e-4)
    with pytest.raises(ValueError, match='no attention output'):
        ort_predictor.predict(faces[0], attention=True)


@pytest.mark.slow
def test_export_cli_batch_is_dynamic_by_default(model_name, tmp_path, capsys, lfw_faces):
    from timm_dan.cli import main
    output = tmp_path / 'default.onnx'
    assert main(['export', model_name, '--output', str(output), '--no-attention']) == 0
    assert 'input Nx3x64x64' in capsys.readouterr().out
    predictor = FERPredictor(str(output), detector='none', backend='onnxruntime')
    assert predictor.runner.fixed_batch is None
    faces = [np.repeat((f[..., None] * 255).astype(np.uint8), 3, 2) for f in lfw_faces[:3]]
    x = np.stack([predictor.transform(Image.fromarray(f)).numpy() for f in faces])
    assert predictor.runner(x, attention=False)[0].shape == (3, 7)  # the 3 faces in one run


def _export_error(args, capsys) -> str:
    from timm_dan.cli import main
    assert main(['export', *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith('timm-dan export: error: ') and err.count('\n') == 1 and 'Traceback' not in err, err
    return err


def test_export_cli_unknown_model_exits_2(tmp_path, capsys):
    err = _export_error(['local-dir:' + str(tmp_path / 'nothing'), '--output', str(tmp_path / 'x.onnx')], capsys)
    assert 'could not load model' in err and str(tmp_path / 'nothing') in err
    assert not (tmp_path / 'x.onnx').exists()


def test_export_cli_bad_inputs_are_one_line_exit_2(model_name, tmp_path, capsys):
    err = _export_error([model_name, '--output', str(tmp_path)], capsys)
    assert f'--output {tmp_path} is a folder' in err
    plain = tmp_path / 'resnet'
    timm.models.save_for_hf(timm.create_model('resnet18', num_classes=7), plain, safe_serialization=True)
    err = _export_error([f'local-dir:{plain}', '--output', str(tmp_path / 'r.onnx')], capsys)
    assert f"'local-dir:{plain}' (ResNet) has no DAN attention heads" in err and '--no-attention' in err
    assert not (tmp_path / 'r.onnx').exists()
    err = _export_error([model_name, '--output', str(tmp_path / 'o.onnx'), '--opset', '3'], capsys)
    assert '--opset 3: this exporter writes opsets 16 to' in err
    err = _export_error([model_name, '--output', str(tmp_path / 'o.onnx'), '--quantize', 'int8'], capsys)
    assert '--quantize int8 and --calibration DIR go together' in err
    (tmp_path / 'a-file').write_text('')
    err = _export_error([model_name, '--output', str(tmp_path / 'a-file' / 'o.onnx')], capsys)
    assert f'cannot create the output folder {tmp_path / "a-file"}' in err
    assert not (tmp_path / 'o.onnx').exists()


def test_an_opset_the_converter_cannot_reach_is_an_error(eval_model, tmp_path):
    with pytest.raises(ValueError, match=r'could not convert the graph to opset 15 \(it wrote 18\)'):
        export_onnx(eval_model, tmp_path / 'old.onnx', opset=15)
    assert not (tmp_path / 'old.onnx').exists()
