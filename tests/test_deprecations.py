"""Old import paths keep working for one release, each with a DeprecationWarning naming the new home."""
import importlib

import pytest

import timm_dan.labels
import timm_dan.models.official
import timm_dan.models.pretrained

MOVED = [
    ('timm_dan.models', 'LABELS', timm_dan.labels.LABELS),
    ('timm_dan.models', 'load_weights_file', timm_dan.models.official.read_checkpoint),
    ('timm_dan.models.dan', 'convert_official_checkpoint', timm_dan.models.official.convert_official_checkpoint),
    ('timm_dan.models.dan', 'OFFICIAL_LABEL_MAPS', timm_dan.models.official.OFFICIAL_LABEL_MAPS),
    ('timm_dan.models.dan', 'HF_HUB_NAMESPACE', timm_dan.models.pretrained.HF_HUB_NAMESPACE),
    ('timm_dan.hub', 'missing_weights_message', timm_dan.models.pretrained.missing_weights_message),
]


@pytest.mark.parametrize('module, name, new', MOVED)
def test_moved_name_warns_and_is_the_new_object(module, name, new):
    with pytest.warns(DeprecationWarning, match=rf'{module}\.{name} is deprecated .* use timm_dan\.'):
        old = getattr(importlib.import_module(module), name)
    assert old is new


def test_hub_create_model_warns_and_creates(tmp_path):
    import timm_dan.hub
    with pytest.warns(DeprecationWarning, match='timm_dan.hub.create_model is deprecated'):
        model = timm_dan.hub.create_model('dan_resnet18', num_classes=7, num_heads=2)
    assert model.num_classes == 7 and model.num_heads == 2


def test_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'timm_dan.models' has no attribute 'nothing'"):
        timm_dan.models.nothing  # noqa: B018
