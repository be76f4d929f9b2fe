"""`timm-dan predict`: table, JSON/CSV, annotated images, attention grids, videos, exit codes."""
import csv
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from timm_dan.cli import main


def test_predict_subprocess_reports_failures_and_keeps_going(model_name, photo_files, subprocess_env, python,
                                                             tmp_path):
    (photo_files / 'empty.jpg').write_bytes(b'')
    (photo_files / 'notes.jpg').write_text('hello, not a photo')
    out = tmp_path / 'out.json'
    proc = subprocess.run(
        [python, '-m', 'timm_dan', 'predict', str(photo_files), '--model', model_name, '--json', str(out),
         '--annotate', str(tmp_path / 'annotated'), '--attention', str(tmp_path / 'attention')],
        capture_output=True, text=True, env=subprocess_env, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    # auto detector offline: Haar, said once
    assert proc.stderr.count('Face detector: Haar cascade') == 1
    assert 'empty.jpg: the file is empty' in proc.stderr and 'notes.jpg: not an image' in proc.stderr
    assert '2 input(s) could not be read' in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ['file', 'face', 'label', 'score', 'det', 'top-3']
    astronaut_row = next(line for line in lines if 'astronaut.png' in line).split()
    assert astronaut_row[1] == '0' and astronaut_row[2] in {'neutral', 'happy', 'sad', 'surprise', 'fear',
                                                            'disgust', 'anger'}
    assert any('coffee.jpg' in line and 'no face' in line for line in lines)

    results = json.loads(out.read_text())
    assert [r['file'].rsplit('/', 1)[1] for r in results] == ['astronaut.png', 'coffee.jpg', 'empty.jpg', 'notes.jpg']
    face = results[0]['faces'][0]
    assert set(face) == {'box', 'landmarks', 'detection_score', 'label', 'score', 'probs', 'attention'}
    assert len(face['probs']) == 7 and face['detection_score'] > 3.0
    assert abs(sum(face['probs'].values()) - 1) < 1e-4 and results[0]['error'] is None
    assert results[1] == {'file': str(photo_files / 'coffee.jpg'), 'faces': [], 'error': None,
                          'annotated': str(tmp_path / 'annotated' / 'coffee.jpg.png')}
    assert results[2]['error'] and results[3]['error']
    assert sorted(p.name for p in (tmp_path / 'annotated').iterdir()) == ['astronaut.png.png', 'coffee.jpg.png']
    assert face['attention'] == str(tmp_path / 'attention' / 'astronaut.png.face0.png')
    grid = Image.open(face['attention'])
    assert grid.size == (160 * 5 + 64, 160)  # the face, 4 heads, the colour bar


def test_predict_csv_all_readable_exits_0(model_name, photo_files, tmp_path, capsys):
    out = tmp_path / 'out.csv'
    code = main(['predict', str(photo_files / 'astronaut.png'), str(photo_files / 'coffee.jpg'), '--model',
                 model_name, '--detector', 'haar', '--csv', str(out), '--tta'])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert [r['file'].rsplit('/', 1)[1] for r in rows] == ['astronaut.png', 'coffee.jpg']
    assert rows[0]['face'] == '0' and 60 < float(rows[0]['w']) < 160 and rows[0]['error'] == ''
    probs = [float(rows[0][name]) for name in ('neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger')]
    assert abs(sum(probs) - 1) < 1e-4 and float(rows[0]['score']) == pytest.approx(max(probs), abs=1e-6)
    assert rows[1]['face'] == '' and rows[1]['label'] == ''


def test_predict_video_json(model_name, astronaut, tmp_path, capsys):
    video = tmp_path / 'clip.avi'
    frame = cv2.cvtColor(cv2.resize(astronaut, (256, 256)), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 5, (256, 256))
    for _ in range(4):
        writer.write(frame)
    writer.release()
    out = tmp_path / 'frames.json'
    code = main(['predict', str(video), str(tmp_path / 'missing.avi'), '--video', '--every', '2', '--model',
                 model_name, '--detector', 'haar', '--json', str(out), '--annotate', str(tmp_path / 'ann')])
    assert code == 1  # the missing video
    frames = json.loads(out.read_text())
    assert [(f['frame'], f['time']) for f in frames[:2]] == [(0, 0.0), (2, 0.4)]
    assert all(len(f['faces']) == 1 for f in frames[:2])
    assert frames[2]['error'] == f'{tmp_path / "missing.avi"}: no such file'
    assert sorted(p.name for p in (tmp_path / 'ann').iterdir()) == ['clip.avi.frame000000.png',
                                                                    'clip.avi.frame000002.png']
    assert frames[0]['annotated'] == str(tmp_path / 'ann' / 'clip.avi.frame000000.png')
    assert 'clip.avi @0.40s' in capsys.readouterr().out


def test_predict_setup_failure_exits_2(tmp_path, capsys):
    code = main(['predict', str(tmp_path), '--model', 'local-dir:' + str(tmp_path / 'no_model')])
    assert code == 2 and 'could not set up the predictor' in capsys.readouterr().err


def test_predict_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(['predict', 'x.jpg', '--json', 'a.json', '--csv', 'b.csv'])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(['predict', 'x.jpg', '--detector', 'mtcnn'])
    assert 'invalid choice' in capsys.readouterr().err


def test_annotated_image_shows_the_box(model_name, photo_files, tmp_path, astronaut):
    code = main(['predict', str(photo_files / 'astronaut.png'), '--model', model_name, '--detector', 'haar',
                 '--annotate', str(tmp_path / 'ann')])
    assert code == 0
    drawn = np.asarray(Image.open(tmp_path / 'ann' / 'astronaut.png.png'))
    changed = np.argwhere((drawn != astronaut).any(axis=2))
    # only the box region (and its label just above) was drawn on
    assert 40 < changed[:, 0].min() < 70 and 150 < changed[:, 0].max() < 175
    assert 170 < changed[:, 1].min() < 180 and 260 < changed[:, 1].max() < 320


def _write_clip(path, frame_rgb, frames=4, fourcc='MJPG'):
    frame = cv2.cvtColor(cv2.resize(frame_rgb, (256, 256)), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 5, (256, 256))
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    return path


def test_unreadable_videos_are_errors_exit_1(model_name, astronaut, tmp_path, subprocess_env, python):
    """Each kind of video that cannot be read is one error naming it, the others are still read, exit 1."""
    clip = _write_clip(tmp_path / 'clip.avi', astronaut)
    (tmp_path / 'broken.jpg').write_text('not a video at all')  # OpenCV opens it, then decodes no frame
    (tmp_path / 'empty.mp4').write_bytes(b'')
    (tmp_path / 'cut.avi').write_bytes(clip.read_bytes()[:600])  # a truncated AVI
    out = tmp_path / 'frames.json'
    proc = subprocess.run(
        [python, '-m', 'timm_dan', 'predict', str(tmp_path / 'broken.jpg'), str(tmp_path / 'missing.mp4'),
         str(tmp_path / 'empty.mp4'), str(tmp_path / 'cut.avi'), str(clip), '--video', '--model', model_name,
         '--detector', 'haar', '--json', str(out)], capture_output=True, text=True, env=subprocess_env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert errors == [
        f'error: {tmp_path / "broken.jpg"}: no frame could be decoded: not a video OpenCV can read (it starts with '
        "text: 'not a video at all')",
        f'error: {tmp_path / "missing.mp4"}: no such file',
        f'error: {tmp_path / "empty.mp4"}: the file is empty (0 bytes)',
        f'error: {tmp_path / "cut.avi"}: a video file (AVI) that OpenCV cannot read: truncated, or in a codec this '
        'OpenCV build lacks',
    ], proc.stderr
    assert '4 input(s) could not be read' in proc.stderr and '[mjpeg @' not in proc.stderr  # no FFmpeg noise
    # nor OpenCV's own readers' (its AVI parser prints raw bytes of the file)
    assert [line for line in proc.stderr.splitlines() if not line.startswith('error: ')] == [
        '4 input(s) could not be read'], proc.stderr
    frames = json.loads(out.read_text())
    assert [f['error'] is None for f in frames] == [False] * 4 + [True] * 4
    assert [len(f['faces']) for f in frames[4:]] == [1] * 4
    assert sum(' ERROR' in line for line in proc.stdout.splitlines()) == 4


def test_a_video_without_video_says_add_video(model_name, astronaut, tmp_path, capsys):
    clip = _write_clip(tmp_path / 'clip.mp4', astronaut, fourcc='mp4v')
    assert main(['predict', str(clip), '--model', model_name, '--detector', 'haar']) == 1
    assert (f'error: {clip}: looks like a video (MP4), not an image: add --video (in Python: '
            f'FERPredictor.predict_video)') in capsys.readouterr().err


@pytest.mark.parametrize('args, message', [
    (['--video', '--every', '0'], 'argument --every: must be 1 or more, got 0'),
    (['--every', '2'], '--every applies to videos: add --video'),
    (['--batch-size', '0'], 'argument --batch-size: must be 1 or more, got 0'),
    (['--min-face-size', '-1'], 'argument --min-face-size: must be 0 or more, got -1'),
    (['--detector', 'haar', '--detector-model', 'x.onnx'],
     '--detector-model is a YuNet .onnx file: use it with --detector yunet or auto, not haar'),
])
def test_bad_options_are_usage_errors_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(['predict', 'x.jpg', *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.rstrip().endswith(f'timm-dan predict: error: {message}'), err
    assert 'Traceback' not in err


def test_no_weights_offline_gives_the_cli_commands(tmp_path, subprocess_env, python):
    proc = subprocess.run([python, '-m', 'timm_dan', 'predict', str(tmp_path), '--model', 'dan_resnet18.rafdb'],
                          capture_output=True, text=True, env=subprocess_env, timeout=300)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith('error: could not set up the predictor: ') and proc.stderr.count('\n') == 1
    assert "Could not get the weights of the Hugging Face Hub repo 'timm-dan/dan_resnet18.rafdb'" in proc.stderr
    assert ('`timm-dan hub convert-official rafdb_epoch21_acc0.897_bacc0.8275.pth --dataset rafdb --output-dir '
            'dan-rafdb`, then use `--model local-dir:dan-rafdb`') in proc.stderr
    assert 'https://github.com/yaoing/DAN' in proc.stderr


def test_detection_score_thresholds(model_name, astronaut, tmp_path, capsys):
    """Drawn at 1200 px, the astronaut gets Haar boxes on her face (7.2), a grey patch (4.1) and her sleeve (2.4):
    the default Haar threshold (3.0) drops the sleeve, --min-face-size the small patch; every score is reported."""
    photo = tmp_path / 'astronaut_1200.png'
    Image.fromarray(cv2.resize(astronaut, (1200, 1200), interpolation=cv2.INTER_CUBIC)).save(photo)

    def faces(*args):
        out = tmp_path / 'out.csv'
        assert main(['predict', str(photo), '--model', model_name, '--detector', 'haar', '--csv', str(out),
                     *args]) == 0
        return [(round(float(r['x']) / 1200 * 512), pytest.approx(float(r['detection_score']), abs=0.01))
                for r in csv.DictReader(out.open())]

    face, patch, sleeve = (175, 7.15), (421, 4.08), (129, 2.44)  # x in the 512 px photo, Haar's level weight
    assert faces('--min-face-score', '0') == [face, patch, sleeve]
    assert faces() == [face, patch]
    assert faces('--min-face-size', '100') == [face]
    assert faces('--min-face-score', '5') == [face]
    assert capsys.readouterr().out.splitlines()[-1].split()[4] == '7.15'  # the table's det column


def test_detector_model_points_at_a_local_yunet(model_name, fake_yunet_file, tmp_path, capsys):
    image = np.zeros((320, 320, 3), dtype=np.uint8)
    image[96:128, 160:192, 0] = 255  # a face for the fake YuNet (score 1.0)
    image[224:256, 32:64, 0] = 128  # a weaker one (score 0.5)
    Image.fromarray(image).save(tmp_path / 'red.png')
    out = tmp_path / 'out.json'
    for detector in ('yunet', 'auto'):  # auto with a model file: YuNet, no Hub
        assert main(['predict', str(tmp_path / 'red.png'), '--model', model_name, '--detector', detector,
                     '--detector-model', str(fake_yunet_file), '--json', str(out)]) == 0
        face, = json.loads(out.read_text())[0]['faces']
        assert face['box'] == [144.0, 80.0, 64.0, 64.0] and len(face['landmarks']) == 5
        assert face['detection_score'] == 1.0
    assert main(['predict', str(tmp_path / 'red.png'), '--model', model_name, '--detector-model',
                 str(fake_yunet_file), '--min-face-score', '0.4', '--json', str(out)]) == 0
    assert [f['detection_score'] for f in json.loads(out.read_text())[0]['faces']] == [1.0, 0.502]


@pytest.mark.parametrize('detector_args, message', [
    (['--detector', 'yunet'], 'error: could not set up the predictor: --detector yunet needs '
     "face_detection_yunet_2023mar.onnx from the Hugging Face Hub repo 'opencv/face_detection_yunet', which is not "
     'in the cache and could not be downloaded (LocalEntryNotFoundError). Go online once (unset HF_HUB_OFFLINE), '
     'give a local copy of the file with --detector-model PATH, or use --detector haar or --detector auto.'),
    (['--detector-model', 'NOWHERE/yunet.onnx'], 'error: could not set up the predictor: NOWHERE/yunet.onnx: no such '
     'file (the YuNet model, face_detection_yunet_2023mar.onnx); give the path of the .onnx file with '
     '--detector-model PATH, or use --detector haar'),
])
def test_detector_errors_speak_cli(detector_args, message, model_name, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_CACHE', str(tmp_path / 'empty_cache'))
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_OFFLINE', True)
    assert main(['predict', str(tmp_path), '--model', model_name, *detector_args]) == 2
    err = capsys.readouterr().err
    assert err.strip() == message and 'detector="' not in err


def test_outputs_keep_the_source_path_and_are_recorded(model_name, astronaut, tmp_path, subprocess_env, python):
    photos = tmp_path / 'photos'
    for name in ('a.bmp', 'a.tiff', 'a.webp', 'sub/a.bmp', '.thumbnails/a.png', '._a.jpg'):
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(astronaut).save(photos / name, format='PNG' if name.endswith('.jpg') else None)
    out = tmp_path / 'out.json'

    def run(*args):
        proc = subprocess.run([python, '-m', 'timm_dan', 'predict', str(photos), str(photos / 'a.bmp'), '--model',
                               model_name, '--detector', 'haar', '--json', str(out), '--annotate',
                               str(tmp_path / 'ann'), '--attention', str(tmp_path / 'att'), *args],
                              capture_output=True, text=True, env=subprocess_env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(out.read_text())

    results = run()
    names = ['a.bmp', 'a.tiff', 'a.webp', 'sub/a.bmp', 'a.bmp']  # the folder (hidden entries skipped), then a.bmp
    assert [r['file'] for r in results] == [str(photos / n) for n in names]
    stems = ['a.bmp', 'a.tiff', 'a.webp', 'sub/a.bmp', 'a.bmp.2']  # a name met again gets a counter
    assert [r['annotated'] for r in results] == [str(tmp_path / 'ann' / f'{s}.png') for s in stems]
    assert [r['faces'][0]['attention'] for r in results] == [str(tmp_path / 'att' / f'{s}.face0.png') for s in stems]
    for r in results:
        assert Image.open(r['annotated']).size == (512, 512) and Image.open(r['faces'][0]['attention']).size[1] == 160
    results = run('--include-hidden')
    assert [Path(r['file']).relative_to(photos).as_posix() for r in results][:3] == ['._a.jpg', '.thumbnails/a.png',
                                                                                     'a.bmp']


def test_table_columns_stay_aligned_on_long_names(model_name, astronaut, tmp_path, capsys):
    short, long = tmp_path / 'a.png', tmp_path / ('a_rather_long_file_name_from_a_camera_' + 'x' * 40 + '.png')
    for path in (short, long):
        Image.fromarray(astronaut).save(path)
    assert main(['predict', str(short), str(long), '--model', model_name, '--detector', 'haar']) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    columns = header.index('face'), header.index('label'), header.index('score'), header.index('det')
    for row in rows:
        assert row[columns[0] - 1] == ' ' and row[columns[0] + 3] == '0'  # the face index right under 'face'
        assert row[columns[1]:].split()[0] in {'neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger'}
    assert rows[1].startswith('...') and rows[1].split()[0].endswith('xxxx.png')
