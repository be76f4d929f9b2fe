"""How FERPredictor feeds its torch runner: uint8 crops, normalised on the device exactly as timm's eval transform
normalises them (the same outputs as float input), and on a CUDA device CUDA graphs per batch-size bucket."""
import numpy as np
import pytest
import timm
import torch
from PIL import Image

from timm_dan.inference import FERPredictor
from timm_dan.inference.predictor import _pixel_steps


@pytest.fixture(scope='module')
def faces(lfw_faces):
    return [(np.repeat(face[..., None], 3, 2) * 255 + .5).astype(np.uint8) for face in lfw_faces[:5]]


def _probs(results):
    return np.array([list(result.faces[0].probs.values()) for result in results])


@pytest.mark.parametrize('precision, tta', [('fp32', False), ('fp32', True)])
def test_uint8_crops_give_the_outputs_of_float_input(model_name, faces, precision, tta):
    predictor = FERPredictor(model_name, detector='none', precision=precision, tta=tta, batch_size=3)
    fed = []
    runner = predictor.runner
    predictor.runner = lambda x, attention: fed.append(x) or runner(x, attention)
    predictor.runner.takes_uint8 = True
    pixels = predictor.predict(faces)
    assert fed[0].dtype == np.uint8 and fed[0].shape == (3, 64, 64, 3)  # N x H x W x 3 at the input size
    predictor.runner = runner
    runner.takes_uint8 = False  # the float path: the whole timm transform on the host
    floats = predictor.predict(faces)
    np.testing.assert_array_equal(_probs(pixels), _probs(floats))


def test_the_device_normalisation_is_timms_to_tensor_and_normalize(model_name, faces):
    predictor = FERPredictor(model_name, detector='none', precision='fp32')
    steps = _pixel_steps(predictor.transform, predictor.data_config)
    assert steps is not None
    pixels = torch.from_numpy(np.stack([np.asarray(steps(Image.fromarray(face))) for face in faces]))
    expected = torch.stack([predictor.transform(Image.fromarray(face)) for face in faces])
    normalised = predictor.runner._model_input(pixels)
    assert normalised.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(normalised, expected)

    # a transform with other steps after ToTensor (or another normalisation) keeps the float path
    other = timm.data.create_transform(input_size=(3, 64, 64), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert _pixel_steps(other, predictor.data_config) is None
    erasing = timm.data.create_transform(input_size=(3, 64, 64), is_training=True, re_prob=0.5)
    assert type(erasing.transforms[-1]).__name__ == 'RandomErasing'
    assert _pixel_steps(erasing, predictor.data_config) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a CUDA device')
def test_cuda_graphs_per_bucket_give_the_eager_outputs(model_name, faces):
    graphs = FERPredictor(model_name, detector='none', precision='fp32', device='cuda', batch_size=8)
    eager = FERPredictor(model_name, detector='none', precision='fp32', device='cuda', batch_size=8)
    assert graphs.runner.cuda_graphs
    eager.runner.cuda_graphs = False
    for count in (1, 3, 4, 5, 1):
        batch = faces[:count]
        np.testing.assert_allclose(_probs(graphs.predict(batch)), _probs(eager.predict(batch)), atol=1e-5)
    assert sorted(key[0] for key in graphs.runner._graphs) == [1, 4, 8]  # one graph per bucket, reused
