"""Fixtures for the inference tests: a small DAN saved by the test (64x64 input), real photos from scikit-image."""
import struct
import zlib

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import timm_dan  # noqa: F401  (registers the dan_* models)
from tests.inference.fake_yunet import write_fake_yunet

skimage_data = pytest.importorskip('skimage.data')

INPUT_SIZE = 64


@pytest.fixture(scope='session')
def saved_model_dir(tmp_path_factory):
    """A random-weight 7-class dan_resnet18 with a 64x64 data config, saved the way the Hub holds it."""
    torch.manual_seed(0)
    model = timm.create_model(
        'dan_resnet18', num_classes=7, pretrained_cfg_overlay=dict(input_size=(3, INPUT_SIZE, INPUT_SIZE)))
    # give the heads' BatchNorms non-trivial statistics so that folding them is really exercised
    with torch.no_grad():
        for m in model.heads.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp('dan_model')
    timm.models.save_for_hf(model.eval(), path, safe_serialization=True)
    return path


@pytest.fixture(scope='session')
def model_name(saved_model_dir) -> str:
    return f'local-dir:{saved_model_dir}'


@pytest.fixture(scope='session')
def eval_model(model_name):
    return timm.create_model(model_name, pretrained=True).eval()


@pytest.fixture(scope='session')
def haar_predictor(model_name):
    from timm_dan.inference import FERPredictor
    return FERPredictor(model_name, detector='haar', precision='fp32')  # compared with the plain fp32 model


@pytest.fixture(scope='session')
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope='session')
def lfw_faces() -> np.ndarray:
    """The first 10 faces of scikit-image's LFW subset: 25 x 25 float grayscale in [0, 1]."""
    return skimage_data.lfw_subset()[:10]


@pytest.fixture
def photo_files(tmp_path, astronaut):
    """The astronaut (PNG) and coffee (JPEG) photos written to a folder, as a user would have them."""
    folder = tmp_path / 'photos'
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / 'astronaut.png')
    Image.fromarray(skimage_data.coffee()).save(folder / 'coffee.jpg')
    return folder


@pytest.fixture(scope='session')
def png_header_only():
    """Writes a PNG whose header claims width x height pixels, with a tiny (truncated) pixel stream."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)

    def write(path, width, height):
        ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
        path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64))
                         + chunk(b'IEND', b''))
        return path
    return write


@pytest.fixture(scope='session')
def fake_yunet_file(tmp_path_factory):
    """A YuNet-shaped ONNX file for 320 x 320 images (tests/inference/fake_yunet.py): red cells are faces."""
    return write_fake_yunet(tmp_path_factory.mktemp('yunet') / 'face_detection_yunet_2023mar.onnx')


def _lfw_batch(images: np.ndarray) -> torch.Tensor:
    """scikit-image LFW images (25 x 25 gray in [0, 1]) as a normalised 64 x 64 RGB batch."""
    x = torch.nn.functional.interpolate(torch.from_numpy(images).float()[:, None], size=64, mode='bilinear')
    mean, std = (torch.tensor(v)[:, None, None]
                 for v in (timm.data.IMAGENET_DEFAULT_MEAN, timm.data.IMAGENET_DEFAULT_STD))
    return (x.expand(-1, 3, -1, -1) - mean) / std


@pytest.fixture(scope='session')
def trained_model():
    """A 64 x 64 dan_resnet18 with BatchNorm statistics of real photos and a classifier fitted to tell LFW faces
    ('happy') from LFW non-faces ('neutral'): a random trunk with a trained linear probe on top."""
    torch.manual_seed(0)
    model = timm.create_model('dan_resnet18', num_classes=7, pretrained_cfg_overlay=dict(input_size=(3, 64, 64)))
    images = skimage_data.lfw_subset()  # 100 faces, then 100 non-faces
    x = _lfw_batch(np.concatenate([images[:48], images[100:148]]))
    labels = torch.tensor([1] * 48 + [0] * 48)
    model.train()
    with torch.no_grad():
        for batch in x[torch.randperm(len(x))].split(16):
            model(batch)
        model.eval()
        features = model.forward_head(model.forward_features(x), pre_logits=True)
    model.bn.reset_parameters()
    model.bn.reset_running_stats()
    optimizer = torch.optim.Adam(model.fc.parameters(), lr=0.01)
    for _ in range(100):
        loss = torch.nn.functional.cross_entropy(model.bn(model.fc(features)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.requires_grad_(False)
