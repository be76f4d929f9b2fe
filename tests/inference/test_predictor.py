"""FERPredictor on real photos: batching, preprocessing, fast paths, TTA, attention maps, video."""
import inspect
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import timm
import torch
from PIL import Image

import timm_dan
from timm_dan.inference import Detection, FERPredictor, FrameResult, attention_grid, save_annotated
from timm_dan.inference.align import crop_face
from timm_dan.inference.predictor import label_names_of

skimage_data = pytest.importorskip('skimage.data')


def _reference_probs(model, image, box, margin=0.2):
    """What the predictor should output for one face, computed the plain way with the unfused model."""
    config = timm.data.resolve_model_data_config(model)
    crop = crop_face(image, np.asarray(box), config['input_size'][1:][::-1], margin=margin)
    x = timm.data.create_transform(**config)(Image.fromarray(crop))[None]
    with torch.no_grad():
        return torch.softmax(model(x), 1)[0].numpy()


def test_import_timm_dan_stays_light():
    code = ('import sys, timm_dan, timm_dan.cli; timm_dan.cli.build_parser(); '
            'print("cv2" in sys.modules, "onnxruntime" in sys.modules)')
    import subprocess
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ['False', 'False']  # `import timm_dan` and `timm-dan --help` stay light
    assert timm_dan.FERPredictor is FERPredictor


def test_astronaut_one_face_matches_the_plain_model(haar_predictor, eval_model, astronaut):
    result, = haar_predictor.predict(astronaut)
    assert result.error is None and result.size == (512, 512) and len(result.faces) == 1
    face = result.faces[0]
    assert list(face.probs) == list(timm_dan.LABELS[:7])
    assert face.label == max(face.probs, key=face.probs.get) and face.score == face.probs[face.label]
    np.testing.assert_allclose(list(face.probs.values()), _reference_probs(eval_model, astronaut, face.box),
                               atol=1e-4)
    as_dict = result.to_dict()
    assert set(as_dict) == {'file', 'faces', 'error'} and as_dict['faces'][0]['landmarks'] is None
    assert len(as_dict['faces'][0]['box']) == 4


def test_one_call_mixes_faces_no_faces_and_failures(haar_predictor, astronaut, tmp_path):
    bad = tmp_path / 'bad.jpg'
    bad.write_text('not an image')
    results = haar_predictor.predict([astronaut, skimage_data.coffee(), bad, skimage_data.chelsea(), astronaut])
    assert [len(r.faces) for r in results] == [1, 0, 0, 0, 1]
    assert [r.error is None for r in results] == [True, True, False, True, True]
    assert str(bad) in results[2].error and results[2].to_dict()['faces'] == []
    np.testing.assert_allclose(list(results[0].faces[0].probs.values()), list(results[4].faces[0].probs.values()),
                               atol=1e-5)


@pytest.mark.slow
def test_lfw_faces_without_detector_batched_like_one_by_one(model_name, eval_model, lfw_faces):
    batched = FERPredictor(model_name, detector='none', batch_size=4, precision='fp32')
    single = FERPredictor(model_name, detector='none', batch_size=1, precision='fp32')
    run, sizes = batched.runner, []
    batched.runner = lambda x, attention: sizes.append(len(x)) or run(x, attention)
    results = batched.predict(list(lfw_faces))
    assert sizes == [4, 4, 2]  # faces of different images share batches
    assert len(results) == 10 and all(len(r.faces) == 1 for r in results)
    for result, one in zip(results, single.predict(list(lfw_faces)), strict=True):
        probs = np.array(list(result.faces[0].probs.values()))
        assert result.faces[0].box == (0., 0., 25., 25.)
        np.testing.assert_allclose(probs.sum(), 1., atol=1e-5)
        np.testing.assert_allclose(probs, list(one.faces[0].probs.values()), atol=1e-5)
    for face_image, result in zip(lfw_faces[:3], results, strict=False):  # the plain way is slow: three suffice
        rgb = (np.repeat(face_image[..., None], 3, 2) * 255 + .5).astype(np.uint8)
        probs = list(result.faces[0].probs.values())
        np.testing.assert_allclose(probs, _reference_probs(eval_model, rgb, (0, 0, 25, 25), margin=0.), atol=1e-4)


def test_odd_files_in_one_folder_each_get_a_clear_result(haar_predictor, astronaut, tmp_path, png_header_only):
    folder = tmp_path / 'odd'
    folder.mkdir()
    photo = Image.fromarray(astronaut)
    photo.convert('L').save(folder / 'a_gray.png')
    photo.convert('RGBA').save(folder / 'b_rgba.png')
    photo.convert('P').save(folder / 'c_palette.png')
    photo.convert('CMYK').save(folder / 'd_cmyk.jpg')
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to view
    photo.rotate(-90, expand=True).save(folder / 'e_exif.jpg', exif=exif)  # stored sideways, upright when viewed
    Image.new('RGB', (1, 1)).save(folder / 'f_tiny.png')
    png_header_only(folder / 'g_bomb.png', 40_000, 40_000)
    (folder / 'h_empty.jpg').write_bytes(b'')
    (folder / 'i_text.jpg').write_text('GIF89a? no, just text')
    results = haar_predictor.predict(folder)
    assert [Path(r.file).name for r in results] == sorted(p.name for p in folder.iterdir())
    assert [len(r.faces) for r in results] == [1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert [r.error is None for r in results] == [True] * 6 + [False] * 3
    assert results[4].size == (512, 512)  # the EXIF rotation was applied before detection
    for result in results[:5]:
        x, y, w, h = result.faces[0].box
        assert 200 < x + w / 2 < 250 and 90 < y + h / 2 < 140
    assert 'decompression-bomb' in results[6].error and 'empty' in results[7].error
    assert 'not an image' in results[8].error


def test_predictor_does_not_modify_the_callers_module(eval_model, astronaut):
    predictor = FERPredictor(eval_model, detector='haar', precision='bf16')  # folds BatchNorms, casts to bf16
    assert predictor.runner.folded_batchnorms == 22 and predictor.runner.model.heads.fused is not None
    assert eval_model.heads.fused is None and isinstance(eval_model.bn, torch.nn.BatchNorm1d)
    assert {p.dtype for p in eval_model.parameters()} == {torch.float32}
    assert len(predictor.predict(astronaut)[0].faces) == 1


def test_any_timm_classifier_works_without_attention(astronaut):
    model = timm.create_model('resnet18', num_classes=3, pretrained_cfg_overlay=dict(input_size=(3, 32, 32)))
    predictor = FERPredictor(model, detector='none')
    face = predictor.predict(astronaut)[0].faces[0]
    assert list(face.probs) == ['neutral', 'happy', 'sad']
    with pytest.raises(ValueError, match='no DAN attention heads'):
        predictor.predict(astronaut, attention=True)


def test_precision_auto_is_bf16_where_the_device_computes_it(trained_model, monkeypatch):
    import timm_dan.precision
    for native, expected in ((True, 'bf16'), (False, 'fp32')):
        monkeypatch.setattr(timm_dan.precision, 'bf16_supported', lambda device, native=native: native)
        runner = FERPredictor(trained_model, detector='none').runner
        assert runner.precision == expected
        dtypes = {p.dtype for p in runner.model.parameters()}
        bns = [m for m in runner.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if expected == 'bf16':  # the BatchNorms after convs and the classifier are folded, then all is bf16
            assert dtypes == {torch.bfloat16} and runner.folded_batchnorms == 22 and len(bns) == 1
        else:  # fp32 runs the model as it is
            assert dtypes == {torch.float32} and runner.folded_batchnorms == 0 and len(bns) == 23
    with pytest.raises(ValueError, match='precision must be one of'):
        FERPredictor(trained_model, precision='fp8')


def test_bf16_predictions_agree_with_fp32(trained_model):
    """On held-out photos, bf16 moves each logit by at most 2 % of the face's logit range (measured: 0.3 % median,
    0.7 % max) and each probability by at most 0.05 (measured: 0.023), and predicts the same class as fp32."""
    images = skimage_data.lfw_subset()
    photos = [(np.repeat(f[..., None], 3, 2) * 255 + .5).astype(np.uint8)
              for f in np.concatenate([images[64:80], images[164:180]])]
    fp32 = FERPredictor(trained_model, detector='none', precision='fp32')
    bf16 = FERPredictor(trained_model, detector='none', precision='bf16')
    x = np.stack([fp32.transform(Image.fromarray(p)).numpy() for p in photos])
    logits32, logits16 = fp32.runner(x, False)[0], bf16.runner(x, False)[0]
    assert logits16.dtype == np.float32 and logits16.shape == (32, 7)
    assert (logits32.argmax(1) == [1] * 16 + [0] * 16).mean() >= 0.75  # the probe works on held-out photos
    spread = logits32.max(1) - logits32.min(1)
    assert (np.abs(logits16 - logits32).max(1) <= 0.02 * spread).all()
    np.testing.assert_array_equal(logits16.argmax(1), logits32.argmax(1))
    p32 = np.array([list(r.faces[0].probs.values()) for r in fp32.predict(photos)])
    p16 = np.array([list(r.faces[0].probs.values()) for r in bf16.predict(photos)])
    np.testing.assert_allclose(p16, p32, atol=0.05)


def test_tta_averages_the_face_and_its_mirror(model_name, lfw_faces):
    face = (lfw_faces[0] * 255).astype(np.uint8)
    plain = FERPredictor(model_name, detector='none', precision='fp32')
    both = plain.predict([face, np.ascontiguousarray(face[:, ::-1])])
    expected = (np.array(list(both[0].faces[0].probs.values())) + list(both[1].faces[0].probs.values())) / 2
    tta = FERPredictor(model_name, detector='none', tta=True, precision='fp32').predict(face)[0].faces[0]
    np.testing.assert_allclose(list(tta.probs.values()), expected, atol=1e-5)


def test_attention_maps_match_forward_attention(haar_predictor, eval_model, astronaut, tmp_path):
    result, = haar_predictor.predict(astronaut, attention=True, keep_images=True)
    face = result.faces[0]
    assert face.attention.shape == (4, 2, 2) and face.crop.shape == (64, 64, 3)  # 64 px input -> 2 x 2 maps
    config = timm.data.resolve_model_data_config(eval_model)
    x = timm.data.create_transform(**config)(Image.fromarray(face.crop))[None]
    with torch.no_grad():
        expected = eval_model.forward_attention(x)[0].numpy()
    np.testing.assert_allclose(face.attention, expected, rtol=1e-4, atol=1e-3)
    grid = attention_grid(face)
    assert grid.shape == (160, 160 * 5 + 64, 3)  # the face + one tile per head, enlarged to 160 px, + colour bar
    path = save_annotated(result, tmp_path / 'annotated.png')
    drawn = np.asarray(Image.open(path))
    x, y, w, h = (round(v) for v in face.box)
    assert drawn.shape == astronaut.shape and tuple(drawn[y + h // 2, x]) == (0, 255, 0)  # the green box


def test_label_names_follow_the_config():
    model = timm.create_model('dan_resnet18', num_classes=8)
    assert label_names_of(model) == list(timm_dan.LABELS)
    model.pretrained_cfg = dict(model.pretrained_cfg, label_names=[f'c{i}' for i in range(8)])
    assert label_names_of(model) == [f'c{i}' for i in range(8)]
    model.reset_classifier(10)
    assert label_names_of(model)[-1] == 'class_9'


def _write_video(path, frames, fps=10):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_frames_every_n(haar_predictor, astronaut, tmp_path):
    face = cv2.resize(astronaut, (256, 256))
    empty = cv2.resize(skimage_data.coffee(), (256, 256))
    video = _write_video(tmp_path / 'clip.avi', [face, face, empty, face, empty, face, face])
    frames = haar_predictor.predict_video(str(video), every=2)
    assert inspect.isgenerator(frames)
    results = list(frames)
    assert [r.frame for r in results] == [0, 2, 4, 6]
    np.testing.assert_allclose([r.time for r in results], [0., .2, .4, .6], atol=1e-6)
    assert [len(r.faces) for r in results] == [1, 0, 0, 1]
    assert all(isinstance(r, FrameResult) and r.image is None for r in results)
    assert results[0].to_dict()['frame'] == 0 and 'time' in results[0].to_dict()
    missing, = haar_predictor.predict_video(str(tmp_path / 'missing.avi'))  # one result, as predict() gives
    assert missing.error == f'{tmp_path / "missing.avi"}: no such file' and missing.faces == []


def test_unreadable_inputs_are_results_with_an_error_for_images_and_videos(haar_predictor, astronaut, tmp_path):
    (tmp_path / 'empty.avi').write_bytes(b'')
    (tmp_path / 'notes.avi').write_text('a text file, not a video')  # OpenCV opens it and decodes no frame
    Image.fromarray(astronaut).save(tmp_path / 'photo.png')
    for name, message in (('missing.avi', 'no such file'), ('empty.avi', 'the file is empty (0 bytes)')):
        image, = haar_predictor.predict(tmp_path / name)
        frame, = haar_predictor.predict_video(str(tmp_path / name))
        assert image.error == frame.error == f'{tmp_path / name}: {message}'
    notes, = haar_predictor.predict_video(str(tmp_path / 'notes.avi'))
    assert notes.error.startswith(f'{tmp_path / "notes.avi"}: ')
    assert 'not a video OpenCV can read' in notes.error and notes.faces == []
    photo, = haar_predictor.predict_video(str(tmp_path / 'photo.png'))  # OpenCV reads an image as one frame
    assert photo.error is None and len(photo.faces) == 1


def test_repr_says_what_runs(haar_predictor, model_name):
    assert repr(haar_predictor) == (
        f"FERPredictor(model='{model_name}', backend='torch', device='cpu', precision='fp32', classes=7, "
        "input_size=(3, 64, 64), detector='haar', min_face_score=3.0, min_face_size=24, batch_size=32, tta=False)")


def test_thresholds_apply_to_a_callers_detector(model_name, astronaut):
    def two_faces(image):
        return [Detection(np.array([177., 66., 95., 95.]), score=0.9), Detection(np.array([10., 10., 20., 20.]),
                                                                                  score=0.3)]
    assert len(FERPredictor(model_name, detector=two_faces).predict(astronaut)[0].faces) == 2
    kept = FERPredictor(model_name, detector=two_faces, min_face_score=0.5).predict(astronaut)[0].faces
    assert [f.detection_score for f in kept] == [0.9]
    kept = FERPredictor(model_name, detector=two_faces, min_face_size=30).predict(astronaut)[0].faces
    assert [f.box[2] for f in kept] == [95.]


def test_a_folder_path_without_local_dir_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path} is a folder: pass 'local-dir:{tmp_path}'"):
        FERPredictor(str(tmp_path))


def test_video_memory_stays_flat(model_name, astronaut, tmp_path):
    """24 frames of 512 x 512 (19 MB decoded) through the whole pipeline: the generator must not keep them."""
    face = astronaut
    video = _write_video(tmp_path / 'long.avi', [face] * 24)
    calls = []

    def every_sixth_frame_has_a_face(image):  # keeps the model passes (slow on CPU) to 4
        calls.append(1)
        return [] if len(calls) % 6 else [Detection(np.array([177., 66., 95., 95.]))]

    predictor = FERPredictor(model_name, detector=every_sixth_frame_has_a_face)
    frames = predictor.predict_video(str(video))
    next(frames)
    tracemalloc.start()
    try:
        count = 1 + sum(1 for _ in frames)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 24 and len(calls) == 24
    assert peak < 3 * face.nbytes + 2_000_000, f'peak {peak:,} bytes while streaming 24 frames'


@pytest.mark.slow
def test_compile_gives_the_eager_predictions(lfw_faces):
    """compile=True (Inductor with freezing), on timm's tiny test ResNet to keep the compilation short."""
    from torch._dynamo.utils import counters
    model = timm.create_model('test_resnet', num_classes=3, pretrained_cfg_overlay=dict(input_size=(3, 64, 64)))
    faces = [(np.repeat(f[..., None], 3, 2) * 255 + .5).astype(np.uint8) for f in lfw_faces[:4]]
    eager = FERPredictor(model, detector='none', precision='fp32')
    compiled = FERPredictor(model, detector='none', precision='fp32', compile=True)
    graphs = counters['stats']['unique_graphs']
    for a, b in zip(eager.predict(faces), compiled.predict(faces), strict=True):
        np.testing.assert_allclose(list(b.faces[0].probs.values()), list(a.faces[0].probs.values()), atol=1e-4)
    assert counters['stats']['unique_graphs'] == graphs + 1  # one graph, compiled once for the batch of 4
    with pytest.raises(ValueError, match="compile=True needs backend='torch'"):
        FERPredictor('model.onnx', backend='onnxruntime', compile=True)
