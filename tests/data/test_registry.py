"""The data registry: one source file per data set declares its info, options, label map and model-card entries;
the hub's card table is built from them; the old `timm_dan.data.labels` names still work, with a warning."""
import importlib
from pathlib import Path

import pytest

import timm_dan
import timm_dan.labels
from tests.layers import BOTTOM, imported_modules
from timm_dan.data import FER_DATASETS, SYNTHETIC_DEFAULTS, load_fer_dataset
from timm_dan.data.registry import CARD_ENTRIES, SOURCES, CardEntry, FERDatasetInfo

DATA = Path(timm_dan.__file__).parent / 'data'


def test_every_source_file_declares_one_registered_source():
    files = sorted(p.stem for p in (DATA / 'sources').glob('*.py') if p.stem not in ('__init__', 'base', '_parse'))
    assert sorted(SOURCES) == files == sorted(FER_DATASETS)
    for name, source in SOURCES.items():
        assert importlib.import_module(f'timm_dan.data.sources.{name}').SOURCE is source
        assert isinstance(source.info, FERDatasetInfo) and source.info.name == name
        assert FER_DATASETS[name] is source.info
        assert (source.scan is None) == (source.generate is not None) == (not source.info.needs_data_dir)
        if source.label_map is not None:  # the native classes cover the canonical classes it loads with
            assert len(source.label_map) == max(source.info.num_classes)
            assert source.label_map is timm_dan.labels.LABEL_MAPS[name]


def test_options_are_the_sources_defaults(tmp_path):
    assert {name: dict(source.defaults) for name, source in SOURCES.items()} == {
        'rafdb': {'aligned': True, 'attributes': True}, 'affectnet': {'num_classes': 8}, 'sfew': {}, 'fer2013': {},
        'ferplus': {},
        'expw': {'seed': 0, 'split_fractions': (0.8, 0.1, 0.1)},
        'synthetic': {'num_samples': 4000, 'num_validation_samples': None, 'image_size': 64, 'num_classes': 8,
                      'seed': 0},
    }
    assert SYNTHETIC_DEFAULTS is SOURCES['synthetic'].defaults
    with pytest.raises(TypeError, match=r"unknown options for expw: \['aligned'\] \(valid: \['seed', 'split_fr"):
        load_fer_dataset('expw', tmp_path, aligned=False)
    with pytest.raises(ValueError, match='synthetic is generated in memory: it takes no data_dir'):
        load_fer_dataset('synthetic', tmp_path)
    with pytest.raises(ValueError, match=r"unknown FER data set 'raf'; choose one of \['affectnet', 'expw'"):
        load_fer_dataset('raf')


def test_hub_card_table_is_the_sources_entries_plus_the_backbones():
    from timm_dan.hub import DATASETS, DatasetInfo

    assert DatasetInfo is CardEntry
    assert DATASETS == {**CARD_ENTRIES, 'ms-celeb-1m': DATASETS['ms-celeb-1m'], 'synthetic': DATASETS['synthetic']}
    assert sorted(CARD_ENTRIES) == ['affectnet7', 'affectnet8', 'expw', 'fer2013', 'ferplus', 'rafdb', 'sfew']
    assert CARD_ENTRIES == {key: entry for source in SOURCES.values() for key, entry in source.cards.items()}
    affectnet = SOURCES['affectnet'].cards
    assert [(e.name, e.hub_id, e.config) for e in affectnet.values()] == [
        ('AffectNet (7 classes)', 'affectnet', '7-class'), ('AffectNet (8 classes)', 'affectnet', '8-class')]
    assert DATASETS['rafdb'].hub_id == 'raf-db' and DATASETS['rafdb'].eval_split == 'test'
    assert all('non-commercial' in entry.license for entry in CARD_ENTRIES.values())  # the FER sets
    assert 'MIT' in DATASETS['synthetic'].license and DATASETS['synthetic'].hub_id == ''


def test_data_imports_only_the_vocabulary_below_it():
    for path in DATA.rglob('*.py'):
        outside = {n for n in imported_modules(path) if not n.startswith('timm_dan.data')} - BOTTOM
        assert not outside, f'{path} imports {outside}: data may import the bottom layer only ({sorted(BOTTOM)})'
    # the check resolves relative imports
    assert 'timm_dan.labels' in imported_modules(DATA / 'sources' / 'rafdb.py')
    assert {'timm_dan.labels', 'timm_dan.data.sources'} <= imported_modules(DATA / 'api.py')


def test_data_reexports_the_vocabulary_without_warning(recwarn):
    from timm_dan.data import LABELS, canonical_names

    assert LABELS is timm_dan.labels.LABELS and canonical_names is timm_dan.labels.canonical_names
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize('name, value', [
    ('LABELS', ('neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger', 'contempt')),
    ('RAFDB_TO_CANONICAL', (3, 4, 5, 1, 2, 6, 0)),
    ('FER2013_TO_CANONICAL', (6, 5, 4, 1, 2, 3, 0)),
    ('FERPLUS_VOTE_TO_CANONICAL', (0, 1, 3, 2, 6, 5, 4, 7)),
    ('SFEW_FOLDER_TO_CANONICAL', {
        'neutral': 0, 'happy': 1, 'happiness': 1, 'sad': 2, 'sadness': 2, 'surprise': 3, 'surprised': 3, 'fear': 4,
        'fearful': 4, 'afraid': 4, 'disgust': 5, 'disgusted': 5, 'angry': 6, 'anger': 6, 'contempt': 7}),
])
def test_old_label_names_warn_and_keep_their_values(name, value):
    import timm_dan.data.labels as old

    with pytest.warns(DeprecationWarning, match=rf'timm_dan.data.labels.{name} is deprecated.*use timm_dan.labels'):
        assert getattr(old, name) == value


def test_old_canonical_names_warns_and_works():
    with pytest.warns(DeprecationWarning, match='canonical_names is deprecated'):
        from timm_dan.data.labels import canonical_names
    assert canonical_names(7) == timm_dan.labels.LABELS[:7]
    with pytest.raises(AttributeError, match="has no attribute 'RAFDB'"):
        import timm_dan.data.labels as old
        old.RAFDB  # noqa: B018
