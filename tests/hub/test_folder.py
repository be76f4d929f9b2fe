"""The Hub folder writer and the card generator: files, config, atomic replacement, card metadata."""
import json

import pytest
import timm
import torch
from huggingface_hub import ModelCard

import timm_dan
from timm_dan.hub import Metric, ModelCardInfo, check_model_folder, render_model_card, save_model_folder


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return timm.create_model('dan_resnet18', num_classes=7).eval()


def _card(**kwargs) -> ModelCardInfo:
    return ModelCardInfo(
        model_name='dan_resnet18.my-rafdb-run', datasets=['rafdb'],
        metrics=[Metric('accuracy', 88.913, 'rafdb', std=0.314, num_seeds=3),
                 Metric('mean_class_accuracy', 81.5, 'rafdb')],
        recipe={'optimizer': 'SGD lr 0.1', 'epochs': '40'}, source_file='best.pth.tar', source_sha256='ab' * 32,
        **kwargs,
    )


def test_save_model_folder_round_trip(model, tmp_path):
    out = save_model_folder(model, tmp_path / 'best', card=_card())
    assert sorted(p.name for p in out.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    assert [p.name for p in tmp_path.iterdir()] == ['best']  # no temporary folder left beside
    config = json.loads((out / 'config.json').read_text())
    assert config['architecture'] == 'dan_resnet18' and config['num_classes'] == 7
    assert config['label_names'] == list(timm_dan.LABELS[:7])
    # the folder's weights are not the default tag's: its description must not claim they are
    assert config['pretrained_cfg']['tag'] == 'my-rafdb-run'
    assert config['pretrained_cfg']['description'] == 'dan_resnet18.my-rafdb-run'

    loaded = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert tuple(loaded.pretrained_cfg['label_names']) == timm_dan.LABELS[:7]


def test_card_metadata_and_body(model, tmp_path):
    out = save_model_folder(model, tmp_path / 'best', card=_card())
    card = ModelCard.load(out / 'README.md')
    data = card.data
    assert data.library_name == 'timm' and data.pipeline_tag == 'image-classification'
    assert {'image-classification', 'facial-expression-recognition', 'timm', 'dan'} <= set(data.tags)
    assert data.datasets == ['raf-db']
    results = {r.metric_type: r for r in data.eval_results}
    assert results['accuracy'].metric_value == 88.91
    assert results['accuracy'].dataset_split == 'test'
    assert 'mean ± 0.31 std over 3 seeds' in results['accuracy'].metric_name
    assert 'measured by timm-dan' in results['accuracy'].metric_name
    assert results['mean_class_accuracy'].metric_value == 81.5
    text = card.text
    assert '| RAF-DB (basic, 7 classes) | test | Top-1 accuracy (%) | 88.91 ± 0.31 (3 seeds) | timm-dan |' in text
    assert f'**Parameters:** {sum(p.numel() for p in model.parameters()):,}' in text
    assert '`best.pth.tar` (SHA-256 `' + 'ab' * 32 + '`)' in text
    labels = text.split('## Labels (in output order)')[1].split('##')[0]
    assert [line.split('`')[1] for line in labels.strip().splitlines()] == list(timm_dan.LABELS[:7])
    for section in ('How to use', 'Preprocessing', 'Training', 'Evaluation', 'Licences', 'Bias, risks and limitations',
                    'Citation'):
        assert f'\n## {section}\n' in text
    assert 'group has not been measured for this model' in text.split('## Bias, risks and limitations')[1]


def test_card_from_dict_equals_dataclass():
    metrics = [dict(name='accuracy', value=60., dataset='affectnet8')]
    as_dict = dict(model_name='m', datasets='affectnet8', metrics=metrics)
    assert render_model_card(as_dict) == render_model_card(
        ModelCardInfo('m', ['affectnet8'], metrics=[Metric('accuracy', 60., 'affectnet8')]))
    with pytest.raises(ValueError, match=r"Unknown model card fields \['acc'\]"):
        render_model_card(dict(model_name='m', datasets=['rafdb'], acc=1))


def test_overwrite_replaces_and_refuses_without_flag(model, tmp_path):
    out = save_model_folder(model, tmp_path / 'best', card=_card())
    before = (out / 'model.safetensors').read_bytes()
    with pytest.raises(FileExistsError, match='overwrite=True'):
        save_model_folder(model, out, card=_card())
    other = timm.create_model('dan_resnet18', num_classes=7)
    save_model_folder(other, out, card=_card(), overwrite=True)
    assert (out / 'model.safetensors').read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ['best']


def test_crash_while_writing_keeps_previous_folder(model, tmp_path, monkeypatch):
    out = save_model_folder(model, tmp_path / 'best', card=_card())
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr('timm_dan.hub.folder.render_model_card', crash)  # where save_model_folder looks it up
    with pytest.raises(KeyboardInterrupt):
        save_model_folder(model, out, card=_card(), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ['best']


def test_label_count_must_match(model, tmp_path):
    with pytest.raises(ValueError, match='7 classes but the card names 8 labels'):
        save_model_folder(model, tmp_path / 'best', card=_card(label_names=timm_dan.LABELS))
    assert not (tmp_path / 'best').exists()


@pytest.mark.parametrize('remove', ['config.json', 'model.safetensors'])
def test_incomplete_folder_names_missing_file(model, tmp_path, remove):
    out = save_model_folder(model, tmp_path / 'best', card=_card())
    (out / remove).unlink()
    with pytest.raises(FileNotFoundError, match=f'missing {remove}'):
        check_model_folder(out)


def test_data_config_goes_to_config_and_card(model, tmp_path):
    data_config = dict(input_size=(3, 112, 112), crop_pct=0.9, interpolation='bicubic')
    out = save_model_folder(model, tmp_path / 'best', card=_card(), data_config=data_config)
    cfg = json.loads((out / 'config.json').read_text())['pretrained_cfg']
    assert cfg['input_size'] == [3, 112, 112] and cfg['crop_pct'] == 0.9 and cfg['interpolation'] == 'bicubic'
    text = (out / 'README.md').read_text()
    assert '- Input 112x112 RGB, resized with bicubic interpolation (crop_pct 0.9)' in text
    loaded = timm.create_model(f'local-dir:{out}', pretrained=True)
    assert timm.data.resolve_model_data_config(loaded)['input_size'] == (3, 112, 112)


def test_folder_permissions_follow_umask(model, tmp_path):
    import os
    old = os.umask(0o022)
    try:
        out = save_model_folder(model, tmp_path / 'best', card=_card())
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {
        'README.md': 0o644, 'config.json': 0o644, 'model.safetensors': 0o644}
