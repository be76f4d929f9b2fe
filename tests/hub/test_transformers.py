"""Every Hub folder the project writes loads in transformers (pipeline and AutoModel, after `import timm_dan`),
with the canonical label names and timm's probabilities, and still loads in timm (`local-dir:`, `hf-hub:`)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import timm_dan
from tests.hf_cache import populate_hf_cache
from tests.hub.test_official import RAFDB_FILE, randomized_official_checkpoint
from timm_dan.hub import ModelCardInfo, convert_official_file, save_model_folder
from timm_dan.training import TrainConfig
from timm_dan.training.reporting import export_best

transformers = pytest.importorskip('transformers')
skimage_data = pytest.importorskip('skimage.data')

TOLERANCE = 1e-5  # max abs difference of a probability, transformers vs timm on the same image


def _small_dan(num_classes: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model('dan_resnet18', num_classes=num_classes,
                              pretrained_cfg_overlay=dict(input_size=(3, 64, 64)))
    with torch.no_grad():  # non-trivial logits BatchNorm statistics: the probabilities are not all alike
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    return model.eval()


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    """One folder from each writer: `timm-dan hub convert-official`, train.py's `best/`, `save_model_folder`."""
    root = tmp_path_factory.mktemp('folders')
    checkpoint, _ = randomized_official_checkpoint(7)
    torch.save(checkpoint, root / RAFDB_FILE)
    official = convert_official_file(root / RAFDB_FILE, 'rafdb', root / 'dan-rafdb')

    data_config = {**timm.data.resolve_model_data_config(_small_dan(8)), 'input_size': (3, 64, 64)}
    results = {'validation': {'accuracy': 0.5, 'mean_class_accuracy': 0.4, 'macro_f1': 0.3}}
    run = export_best(_small_dan(8, seed=1), root / 'run', TrainConfig(), results,
                      {'train': 'train', 'validation': 'validation', 'test': 'test'}, timm_dan.LABELS, data_config,
                      epoch=3)

    card = ModelCardInfo('dan_resnet18.mine', ['rafdb'])
    helper = save_model_folder(_small_dan(7, seed=2), root / 'saved', card=card)
    return {'convert-official': official, 'train best/': run, 'save_model_folder': helper}


@pytest.fixture(scope='module')
def face() -> Image.Image:
    """The astronaut's face, as a detector would crop it."""
    return Image.fromarray(skimage_data.astronaut()).crop((150, 40, 320, 230))


def _timm_probs(name: str, image: Image.Image) -> tuple[np.ndarray, list[str]]:
    model = timm.create_model(name, pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        probs = model(transform(image).unsqueeze(0)).softmax(-1)[0].numpy()
    return probs, list(model.pretrained_cfg['label_names'])


@pytest.mark.parametrize('writer', ['convert-official', 'train best/', 'save_model_folder'])
def test_folder_loads_in_transformers_with_timms_probabilities(folders, face, writer):
    folder = folders[writer]
    config = json.loads((folder / 'config.json').read_text())
    assert 'num_classes' not in config.get('model_args', {}), config['model_args']
    expected, names = _timm_probs(f'local-dir:{folder}', face)
    assert names == list(timm_dan.LABELS[:len(names)]) and config['num_classes'] == len(names)

    classifier = transformers.pipeline('image-classification', model=str(folder))
    assert classifier.model.config.id2label == dict(enumerate(names))
    scores = {d['label']: d['score'] for d in classifier(face, top_k=len(names))}
    got = np.array([scores[name] for name in names])
    pipeline_diff = float(np.abs(got - expected).max())

    model = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        auto = model(**processor(face, return_tensors='pt')).logits.softmax(-1)[0].numpy()
    auto_diff = float(np.abs(auto - expected).max())
    print(f'{writer}: max abs probability difference vs timm: pipeline {pipeline_diff:.2e}, AutoModel {auto_diff:.2e}')
    assert pipeline_diff <= TOLERANCE and auto_diff <= TOLERANCE
    assert expected.max() - expected.min() > 0.01  # the comparison is not between uniform outputs


@pytest.mark.parametrize('writer, model_id', [('convert-official', 'timm-dan/dan_resnet18.rafdb'),
                                               ('train best/', None)])
def test_card_shows_the_transformers_route(folders, writer, model_id):
    folder = folders[writer]
    text = (folder / 'README.md').read_text()
    usage = text.split('## How to use with transformers\n')[1].split('\n## ')[0]
    model_id = model_id or str(folder)  # a run's best/ names its own folder
    assert usage.index('import timm_dan') < usage.index('from transformers import pipeline')
    assert f'pipeline("image-classification", model="{model_id}")' in usage
    assert f'AutoModelForImageClassification.from_pretrained("{model_id}")' in usage


def test_folder_loads_through_hf_hub_in_timm_and_transformers(folders, face, subprocess_env, tmp_path):
    """The converted folder as a Hub repo in an offline cache: `hf-hub:` in timm, the repo id in transformers."""
    files = {p.name: p.read_bytes() for p in folders['convert-official'].iterdir()}
    populate_hf_cache(tmp_path / 'hf_home' / 'hub', 'someone/dan-rafdb', files)
    face.save(tmp_path / 'face.png')
    script = (
        'import sys, json, timm, torch, timm_dan, transformers\n'
        'from PIL import Image\n'
        'face = Image.open(sys.argv[1]).convert("RGB")\n'
        'm = timm.create_model("hf-hub:someone/dan-rafdb", pretrained=True).eval()\n'
        't = timm.data.create_transform(**timm.data.resolve_model_data_config(m))\n'
        'p = m(t(face).unsqueeze(0)).softmax(-1)[0].tolist()\n'
        'c = transformers.pipeline("image-classification", model="someone/dan-rafdb")\n'
        'print(json.dumps([p, list(m.pretrained_cfg["label_names"]), c(face, top_k=7)]))\n'
    )
    proc = subprocess.run([sys.executable, '-c', script, str(tmp_path / 'face.png')], env=subprocess_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    probs, names, scores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert names == list(timm_dan.LABELS[:7])
    expected, _ = _timm_probs(f'local-dir:{folders["convert-official"]}', face)
    np.testing.assert_allclose(probs, expected, atol=TOLERANCE)
    got = {d['label']: d['score'] for d in scores}
    np.testing.assert_allclose([got[n] for n in names], expected, atol=TOLERANCE)
