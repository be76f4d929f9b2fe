"""The demo's handlers without a browser: models that do not load, bad photos and videos, the JSON, valence and
arousal, the webcam frame, the queue under concurrent users, and the `timm-dan demo` command."""
import json
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.demo.conftest import free_port, gr, skimage_data
from timm_dan.demo import app
from timm_dan.demo.model import DemoModel, ModelCache, resolve_model_name
from timm_dan.demo.video import analyse_video
from timm_dan.demo.views import face_summary, result_record
from timm_dan.inference.io import ImageLoadError
from timm_dan.inference.results import FaceResult, ImageResult


@pytest.fixture(scope='module')
def models(small_model_dir):
    cache = ModelCache(detector='haar')
    assert cache.get(str(small_model_dir)).predictor is not None  # a bare folder path loads (as local-dir:)
    return cache


@pytest.fixture(scope='module')
def model_name(small_model_dir) -> str:
    return str(small_model_dir)


def test_offline_without_cached_weights_the_page_says_what_is_missing(tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'empty-cache'))
    model = DemoModel.load('dan_resnet18', detector='haar')
    assert model.predictor is None
    assert "'timm-dan/dan_resnet18.affectnet8'" in model.problem and 'unset HF_HUB_OFFLINE' in model.problem
    assert 'timm-dan hub convert-official affecnet8_epoch5_acc0.6209.pth --dataset affectnet8' in model.problem
    assert '--model runs/synthetic/best' in model.problem and 'Traceback' not in model.problem
    assert '\n' not in model.problem and not model.problem.split('**')[2].strip().startswith('dan_resnet18:')
    # the handlers answer with the same paragraph instead of failing
    status, gallery, panels, download = app._analyse_photos(ModelCache('haar'), tmp_path, ['x.png'], 'dan_resnet18')
    assert status.startswith('⚠️ No model to run: `dan_resnet18` could not be loaded') and gallery == [] == panels


def test_model_names(tmp_path):
    assert resolve_model_name('runs/synthetic/best') == 'local-dir:runs/synthetic/best'
    assert resolve_model_name(str(tmp_path)) == f'local-dir:{tmp_path}'
    for name in ('dan_resnet18', 'dan_resnet18.rafdb', 'hf-hub:someone/dan', f'local-dir:{tmp_path}'):
        assert resolve_model_name(name) == name
    unknown = DemoModel.load('dan_resnet99', detector='haar')
    assert "'dan_resnet99' is not a model timm knows" in unknown.problem
    missing = DemoModel.load(str(tmp_path / 'nothing'), detector='haar')
    assert str(tmp_path / 'nothing') in missing.problem and missing.predictor is None


def test_photos_good_and_bad_in_one_upload(models, model_name, photos, tmp_path):
    files = [str(photos[name]) for name in ('astronaut', 'coffee', 'notes', 'huge')]
    status, gallery, panels, download = app._analyse_photos(models, tmp_path, files, model_name)
    lines = status.split('\n\n')
    assert lines[0] == '**astronaut.png**: 1 face.'
    assert lines[1].startswith('**coffee.jpg**: no face found (')
    assert lines[2].startswith('**notes.txt**: not an image file PIL can read (it starts with text:')
    assert lines[3] == ('**huge.png**: 10000x10000 = 100,000,000 pixels is over the limit of 50,000,000 '
                        '(decompression-bomb guard); pass a larger max_pixels if the image is trusted')
    assert str(photos['notes'].parent) not in status  # the user's file names, not the server's paths
    assert [item['caption'] for item in gallery.value] == ['astronaut.png', 'coffee.jpg: no face']
    assert Image.open(gallery.value[0]['image']['path']).size == (512, 512) and gallery.selected_index == 0
    (panel,) = panels
    assert panel.title == 'astronaut.png, face 0' and set(panel.probs) == set(timm_dan_labels(7))
    # the face, 4 heads and the 64 px colour bar
    assert panel.attention is not None and panel.attention.shape[1] == 5 * panel.attention.shape[0] + 64
    assert panel.picture.shape[0] == 160
    records = json.loads(open(download.value['path']).read())
    assert [r['file'] for r in records] == ['astronaut.png', 'coffee.jpg', 'notes.txt', 'huge.png']
    face = records[0]['faces'][0]
    assert face['label'] == max(face['probs'], key=face['probs'].get) and abs(sum(face['probs'].values()) - 1) < 1e-5
    assert records[1]['faces'] == [] and records[1]['error'] is None
    assert records[2]['error'].startswith('notes.txt: not an image file') and records[2]['faces'] == []


def timm_dan_labels(n: int) -> tuple:
    from timm_dan import LABELS
    return LABELS[:n]


def test_valence_and_arousal_shown_when_the_model_gives_them():
    face = FaceResult(box=(1, 2, 30, 40), label='happy', score=0.9, probs={'neutral': 0.1, 'happy': 0.9})
    assert face_summary(face) == '**happy** 0.90 · box 1, 2, 30 x 40'
    assert 'valence' not in result_record(ImageResult('a.png', faces=[face]), 'a.png')['faces'][0]
    face.valence, face.arousal = 0.314, None  # a model with a valence/arousal head that gave no arousal
    assert face_summary(face) == '**happy** 0.90 · valence +0.31 · box 1, 2, 30 x 40'
    face.arousal = -0.12
    record = result_record(ImageResult('/srv/tmp/a.png', faces=[face]), 'a.png')
    assert record['file'] == 'a.png' and record['faces'][0]['valence'] == 0.314
    assert record['faces'][0]['arousal'] == -0.12
    assert 'valence +0.31 · arousal -0.12' in face_summary(face)


def _video(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (320, 320))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_file_with_progress(models, model_name, tmp_path):
    face = cv2.resize(skimage_data.astronaut(), (320, 320))
    path = _video(tmp_path / 'talk.avi', [face] * 6 + [np.full_like(face, 90)] * 6)
    calls = []
    analysis = analyse_video(models.get(model_name).predictor, str(path), 'talk.avi', tmp_path / 'out' / 'a.webm',
                             every=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(1, 7)]
    assert [r['frame'] for r in analysis.records] == [0, 2, 4, 6, 8, 10]
    assert [len(r['faces']) for r in analysis.records] == [1, 1, 1, 0, 0, 0]
    assert analysis.message == '6 frames analysed, 3 with a face.' and len(analysis.timeline) == 3 * 7
    assert {file for file in (r['file'] for r in analysis.records)} == {'talk.avi'}
    capture = cv2.VideoCapture(str(analysis.video))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    assert decoded == 6  # the annotated WebM holds the analysed frames

    status, video, table, download = app._analyse_video(models, tmp_path, str(path), model_name, 3)
    assert status == '**talk.avi**: 4 frames analysed, 2 with a face.' and video.endswith('talk_annotated.webm')
    assert list(table.columns) == ['seconds', 'label', 'probability'] and len(table) == 2 * 7
    assert len(json.loads(open(download.value['path']).read())) == 4


def test_corrupt_video_is_a_message(models, model_name, tmp_path, photos):
    broken = tmp_path / 'broken.mp4'
    broken.write_bytes(b'\x00\x00\x00\x18ftypmp42' + b'not really a video' * 50)
    with pytest.raises(ImageLoadError, match='^broken.mp4: '):
        analyse_video(models.get(model_name).predictor, str(broken), 'broken.mp4', tmp_path / 'x.webm')
    for path in (broken, photos['notes']):
        status, video, table, download = app._analyse_video(models, tmp_path, str(path), model_name, 1)
        assert status.startswith(f'**{path.name}**: ') and str(path.parent) not in status, status
        assert video is None and download.visible is False


def test_webcam_frame(models, model_name):
    frame = skimage_data.astronaut()
    picture, label, text = app._webcam_frame(models, frame, model_name, 'all', True)
    assert text.startswith('1 face; largest: **')
    assert label.num_top_classes is None and len(label.value['confidences']) == 7
    assert picture.shape[0] > frame.shape[0]  # the heads' attention under the frame
    picture, label, text = app._webcam_frame(models, frame, model_name, 'top 3', False)
    assert picture.shape == frame.shape and label.num_top_classes == 3
    coffee = skimage_data.coffee()
    picture, label, text = app._webcam_frame(models, coffee, model_name, 'top 3', False)
    assert label is None and text.startswith('No face in view') and picture.shape == coffee.shape


def test_unexpected_error_is_one_line_on_the_page():
    def broken():
        raise KeyError('some internal detail')
    with pytest.raises(gr.Error) as error:
        app._guarded(broken)()
    assert error.value.message == 'Something went wrong (KeyError); the server log has the details.'


def test_concurrent_users_are_queued(served_demo, photos, small_model_dir):
    from gradio_client import Client, handle_file
    demo, url = served_demo
    model_events = {fn.api_name: fn for fn in demo.fns.values()
                    if fn.api_name in ('model', 'photos', 'webcam', 'video')}
    assert len(model_events) == 4 and {fn.concurrency_id for fn in model_events.values()} == {app.QUEUE}
    assert demo._queue.default_concurrency_limit == 1  # one request runs the model at a time, the others wait
    client = Client(url, verbose=False)
    name = f'local-dir:{small_model_dir}'
    jobs = [client.submit([handle_file(str(photos['astronaut']))], name, api_name='/photos') for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda job: job.result(timeout=300)[0], jobs))
    assert statuses == ['**astronaut.png**: 1 face.'] * 4


def _interruptible() -> None:
    """In the child before exec: Ctrl-C's default action, as in a terminal's foreground job. A background job of a
    non-interactive shell (`bash script &`, how CI may run) inherits SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_serves_the_page_and_stops_on_ctrl_c(small_model_dir, subprocess_env):
    port = free_port()
    env = dict(subprocess_env, GRADIO_ANALYTICS_ENABLED='False')
    proc = subprocess.Popen([sys.executable, '-m', 'timm_dan', 'demo', '--model', str(small_model_dir),
                             '--detector', 'haar', '--port', str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_interruptible)
    try:
        page = None
        for _ in range(240):
            try:
                page = urllib.request.urlopen(f'http://127.0.0.1:{port}/config', timeout=5).read().decode()
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        assert page is not None, proc.communicate()[1]
        assert small_model_dir.name in page and '7 classes (canonical order)' in page
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f'still serving 60 s after Ctrl-C: {proc.communicate()[1][-2000:]}') from None
    assert proc.returncode == 0, err


def test_cli_without_gradio_is_one_line_exit_2(monkeypatch, capsys):
    from timm_dan.cli import main
    monkeypatch.setitem(sys.modules, 'gradio', None)
    monkeypatch.delitem(sys.modules, 'timm_dan.demo', raising=False)
    monkeypatch.delitem(sys.modules, 'timm_dan.demo.app', raising=False)
    assert main(['demo']) == 2
    err = capsys.readouterr().err
    assert err.startswith('timm-dan demo: error: the demo needs Gradio') and err.count('\n') == 1
    assert 'pip install "timm-dan[demo]"' in err


def test_space_app_builds_the_demo_on_the_model_it_is_given(small_model_dir, subprocess_env, repo_root):
    """A Space's app.py as the Space runs it: the model from $TIMM_DAN_DEMO_MODEL, a Blocks named `demo`."""
    env = dict(subprocess_env, TIMM_DAN_DEMO_MODEL=f'local-dir:{small_model_dir}', GRADIO_ANALYTICS_ENABLED='False')
    script = ('import runpy, sys; app = runpy.run_path(sys.argv[1]); demo = app["demo"]; '
              'print(type(demo).__name__, demo.title); '
              'print([b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-status"][0])')
    app_file = repo_root / 'timm_dan' / 'demo' / 'space_app.py'
    proc = subprocess.run([sys.executable, '-c', script, str(app_file)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    kind, status = proc.stdout.strip().splitlines()[-2:]
    assert kind == f'Blocks {app.TITLE}'
    assert status.startswith(f'**local-dir:{small_model_dir}**: 7 classes (canonical order)')
