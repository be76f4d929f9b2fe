"""`timm-dan predict`: table, JSON/CSV, annotated images, attention grids, videos, exit codes."""
import csv
import json
import subprocess

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
    assert lines[0].split() == ['file', 'face', 'label', 'score', 'top-3']
    astronaut_row = next(line for line in lines if 'astronaut.png' in line).split()
    assert astronaut_row[1] == '0' and astronaut_row[2] in {'neutral', 'happy', 'sad', 'surprise', 'fear',
                                                            'disgust', 'anger'}
    assert any('coffee.jpg' in line and 'no face' in line for line in lines)

    results = json.loads(out.read_text())
    assert [r['file'].rsplit('/', 1)[1] for r in results] == ['astronaut.png', 'coffee.jpg', 'empty.jpg', 'notes.jpg']
    face = results[0]['faces'][0]
    assert set(face) == {'box', 'landmarks', 'label', 'score', 'probs'} and len(face['probs']) == 7
    assert abs(sum(face['probs'].values()) - 1) < 1e-4 and results[0]['error'] is None
    assert results[1] == {'file': str(photo_files / 'coffee.jpg'), 'faces': [], 'error': None}
    assert results[2]['error'] and results[3]['error']
    assert sorted(p.name for p in (tmp_path / 'annotated').iterdir()) == ['astronaut.png', 'coffee.png']
    grid = Image.open(tmp_path / 'attention' / 'astronaut_face0.png')
    assert grid.size == (160 * 5, 160)


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
    assert 'could not open as a video file' in frames[2]['error']
    assert sorted(p.name for p in (tmp_path / 'ann').iterdir()) == ['clip_frame000000.png', 'clip_frame000002.png']
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
    drawn = np.asarray(Image.open(tmp_path / 'ann' / 'astronaut.png'))
    changed = np.argwhere((drawn != astronaut).any(axis=2))
    # only the box region (and its label just above) was drawn on
    assert 40 < changed[:, 0].min() < 70 and 150 < changed[:, 0].max() < 175
    assert 170 < changed[:, 1].min() < 180 and 260 < changed[:, 1].max() < 320
