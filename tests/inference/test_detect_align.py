"""Face detection on real photos (Haar, the offline YuNet fallback) and the crop geometry (alignment, margin)."""
import logging

import cv2
import numpy as np
import pytest

from tests.hf_cache import populate_hf_cache
from tests.inference.fake_yunet import LANDMARKS as FAKE_YUNET_LANDMARKS
from timm_dan.cli.predict import DETECTORS as CLI_DETECTORS
from timm_dan.inference import detectors
from timm_dan.inference.align import ALIGNED_TEMPLATE, alignment_matrix, box_matrix, crop_face
from timm_dan.inference.detectors import HaarDetector, WholeImageDetector, create_detector

skimage_data = pytest.importorskip('skimage.data')


@pytest.fixture(scope='module')
def haar():
    return HaarDetector()


def test_haar_finds_the_astronaut_face(haar, astronaut):
    faces = haar(astronaut)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    # Eileen Collins' face lies roughly between x 175-275 and y 60-165 in the 512 x 512 photo
    assert 200 < x + w / 2 < 250 and 90 < y + h / 2 < 140
    assert 70 < w < 150 and 70 < h < 150
    assert faces[0].landmarks is None


def test_haar_box_is_mapped_back_from_a_downscaled_copy(astronaut):
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    faces = HaarDetector(max_side=512)(big)  # detection runs on a 512 x 512 copy
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 400 < x + w / 2 < 500 and 180 < y + h / 2 < 280


@pytest.mark.parametrize('photo', ['coffee', 'chelsea'])
def test_no_face_in_photos_without_people(haar, photo):
    assert haar(getattr(skimage_data, photo)()) == []


def test_whole_image_detector_gives_the_whole_frame():
    faces = WholeImageDetector()(np.zeros((25, 30, 3), dtype=np.uint8))
    np.testing.assert_array_equal(faces[0].box, [0, 0, 30, 25])


def test_auto_falls_back_to_haar_offline_and_says_so_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_CACHE', str(tmp_path / 'empty_cache'))
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_OFFLINE', True)
    monkeypatch.setattr(detectors, '_announced', set())
    with caplog.at_level(logging.WARNING, logger='timm_dan.inference.detectors'):
        first, second = create_detector('auto'), create_detector('auto')
    assert isinstance(first, HaarDetector) and isinstance(second, HaarDetector)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and 'Haar cascade (YuNet unavailable' in messages[0]


def test_yunet_offline_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_CACHE', str(tmp_path / 'empty_cache'))
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_OFFLINE', True)
    with pytest.raises(RuntimeError, match=r"opencv/face_detection_yunet.*HF_HUB_OFFLINE.*detector=\"haar\""):
        create_detector('yunet')


def test_unknown_detector_and_cli_choices():
    with pytest.raises(ValueError, match='detector must be one of'):
        create_detector('mtcnn')
    assert CLI_DETECTORS == detectors.DETECTORS


def _similarity(angle_deg: float, scale: float, shift) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), shift[0]],
                     [scale * np.sin(a), scale * np.cos(a), shift[1]]])


def test_alignment_recovers_a_rotated_scaled_face():
    size = (64, 64)
    template = ALIGNED_TEMPLATE * 64
    forward = _similarity(25, 2.5, (40, 10))  # where a face in the template pose lands in the photo
    landmarks = template @ forward[:, :2].T + forward[:, 2]
    matrix = alignment_matrix(landmarks, size)
    mapped = landmarks @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, template, atol=1e-3)

    # draw the 5 points into a photo, align it: the bright dots land on the template
    photo = np.zeros((300, 300, 3), dtype=np.uint8)
    for px, py in landmarks:
        cv2.circle(photo, (round(px), round(py)), 6, (255, 255, 255), -1)
    crop = crop_face(photo, np.array([0, 0, 300, 300]), size, landmarks=landmarks)
    for tx, ty in template:
        assert crop[round(ty), round(tx)].min() > 200
    assert crop[2, 2].max() == 0  # away from the points stays dark


def test_box_crop_is_square_with_margin_and_padded_at_edges():
    photo = np.zeros((100, 200, 3), dtype=np.uint8)
    photo[20:60, 50:90] = 255  # a 40 x 40 "face"
    matrix = box_matrix(np.array([50, 20, 40, 40]), (48, 48), margin=0.2)
    np.testing.assert_allclose(matrix @ [70, 40, 1], [24, 24])  # the centre goes to the centre
    np.testing.assert_allclose(matrix[0, 0] * 48, 48)  # 40 * 1.2 = 48 source pixels -> 48 crop pixels
    crop = crop_face(photo, np.array([50, 20, 40, 40]), (48, 48), margin=0.2)
    assert crop[24, 24].min() == 255 and crop[1, 1].max() == 0  # 4-pixel dark border around the face
    # a face at the corner: the outside is filled by replicating the border, not black
    photo[:10, :10] = 77
    edge = crop_face(photo, np.array([0, 0, 10, 10]), (20, 20), margin=1.0)
    assert edge[0, 0, 0] == 77


@pytest.fixture
def yunet_in_hf_cache(tmp_path, monkeypatch, fake_yunet_file):
    """The Hub cache layout of opencv/face_detection_yunet, holding a fake YuNet for 320 x 320 images."""
    onnx_file = fake_yunet_file
    snapshot = populate_hf_cache(tmp_path / 'hub', 'opencv/face_detection_yunet',
                                 {detectors.YUNET_FILENAME: onnx_file.read_bytes()})
    path = snapshot / detectors.YUNET_FILENAME
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_CACHE', str(tmp_path / 'hub'))
    monkeypatch.setattr('huggingface_hub.constants.HF_HUB_OFFLINE', True)
    monkeypatch.setattr(detectors, '_announced', set())
    return path


def test_yunet_from_the_hf_cache_gives_boxes_and_landmarks(yunet_in_hf_cache, caplog, model_name):
    from timm_dan.inference import FERPredictor
    image = np.zeros((320, 320, 3), dtype=np.uint8)
    image[96:128, 160:192, 0] = 255  # a red cell (RGB) at row 3, column 5 of the stride-32 grid
    with caplog.at_level(logging.WARNING, logger='timm_dan.inference.detectors'):
        detector = create_detector('auto')
    assert isinstance(detector, detectors.YuNetDetector) and 'Face detector: YuNet' in caplog.text
    assert detector.model_path == str(yunet_in_hf_cache)
    faces = create_detector('yunet')(image)
    assert len(faces) == 1 and faces[0].score == pytest.approx(1.)
    np.testing.assert_allclose(faces[0].box, [144, 80, 64, 64])  # centre (5.5, 3.5) * 32, size 2 * 32
    expected = (np.reshape(FAKE_YUNET_LANDMARKS, (5, 2)) + [5, 3]) * 32
    np.testing.assert_allclose(faces[0].landmarks, expected, atol=1e-3)

    result, = FERPredictor(model_name, detector='yunet').predict(image, attention=True)
    face = result.faces[0]
    np.testing.assert_allclose(face.landmarks, expected, atol=1e-3)
    # the crop is aligned on the landmarks: the red cell sits where the template says
    matrix = alignment_matrix(np.asarray(face.landmarks), (64, 64))
    centre = matrix @ [176, 112, 1]
    assert face.crop[round(centre[1]), round(centre[0]), 0] == 255


def test_crop_of_the_mirror_is_the_mirror_of_the_crop():
    coarse = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (31, 25), interpolation=cv2.INTER_LINEAR)  # smooth, as photos are at this scale
    box = np.array([3., 2., 20., 18.])
    mirrored_box = np.array([31 - 3 - 20, 2., 20., 18.])
    crop = crop_face(image, box, (64, 64), margin=0.1).astype(int)
    mirrored = crop_face(np.ascontiguousarray(image[:, ::-1]), mirrored_box, (64, 64), margin=0.1).astype(int)
    assert np.abs(mirrored[:, ::-1] - crop).max() <= 2  # equal up to OpenCV's 1/32-pixel fixed point


def test_thresholds_per_detector_and_keep_faces(fake_yunet_file):
    assert HaarDetector().min_face_score == detectors.MIN_FACE_SCORE['haar'] == 3.0
    assert create_detector('haar', min_face_score=1.5, min_face_size=10).min_face_score == 1.5
    yunet = create_detector('yunet', model_path=fake_yunet_file)
    assert isinstance(yunet, detectors.YuNetDetector) and yunet.min_face_score == 0.7 and yunet.min_face_size == 24
    image = np.zeros((320, 320, 3), dtype=np.uint8)
    image[96:128, 160:192, 0] = 255  # score 1.0
    image[224:256, 32:64, 0] = 128  # score 0.5: below YuNet's default
    assert [round(f.score, 2) for f in yunet(image)] == [1.0]
    assert [round(f.score, 2) for f in create_detector('yunet', fake_yunet_file, min_face_score=0.4)(image)] == [1., .5]
    assert create_detector('yunet', fake_yunet_file, min_face_size=65)(image) == []  # its faces are 64 px
    faces = [detectors.Detection(np.array([0., 0., w, h]), score=s) for w, h, s in ((30, 40, 2.), (20, 90, 9.),
                                                                                     (50, 50, 5.))]
    assert [f.score for f in detectors.keep_faces(faces, 3., 25.)] == [5.]
    assert [f.score for f in detectors.keep_faces(faces)] == [9., 5., 2.]


def test_detector_errors_in_python_and_cli_terms(tmp_path):
    with pytest.raises(detectors.DetectorUnavailable) as err:
        create_detector('yunet', model_path=tmp_path / 'a{b}.onnx')  # braces in a path are no format fields
    assert str(err.value) == (f'{tmp_path / "a{b}.onnx"}: no such file (the YuNet model, '
                              'face_detection_yunet_2023mar.onnx); give the path of the .onnx file with '
                              'detector_model=PATH, or use detector="haar"')
    assert err.value.for_cli().endswith('with --detector-model PATH, or use --detector haar')
    (tmp_path / 'text.onnx').write_text('not a model')
    with pytest.raises(detectors.DetectorUnavailable, match=r'text.onnx: OpenCV could not load it as a YuNet face '
                                                            r'detector \((?!OpenCV\().*\); detector_model=PATH'):
        create_detector('auto', model_path=tmp_path / 'text.onnx')
    with pytest.raises(ValueError, match='needs detector "yunet" or "auto", not \'haar\''):
        create_detector('haar', model_path=tmp_path / 'text.onnx')
