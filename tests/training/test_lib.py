"""The training library: metrics vs scikit-learn, config parsing and checking, recipes, seeded data, TrainStep."""
import dataclasses
import json
import random
import re
from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from timm_dan.data import DeviceNormalize, load_fer_dataset
from timm_dan.metrics import FER_METRICS_PATH, load_fer_metrics
from timm_dan.precision import accelerate_mixed_precision
from timm_dan.training import (
    ConfigError,
    DANTrainModule,
    NonFiniteLossError,
    TrainConfig,
    TrainStep,
    create_loss,
    create_optimizer,
    create_scheduler,
    create_train_model,
    load_config,
    parse_config,
)
from timm_dan.training.config import SECTIONS, build_parser
from timm_dan.training.data import SeededAugmentation, SeededShuffleSampler, create_loader

CONFIGS = Path(__file__).resolve().parents[2] / 'train_scripts' / 'configs'


pytestmark = pytest.mark.usefixtures('fresh_accelerator_state')


@pytest.mark.parametrize('seed', [0, 1])
def test_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    refs = rng.integers(0, 6, 500)  # class 6 of 7 absent from the references
    preds = np.where(rng.random(500) < 0.6, refs, rng.integers(0, 7, 500))
    metric = evaluate.load(FER_METRICS_PATH, keep_in_memory=True)  # the local module path loads offline
    for start in range(0, 500, 128):
        metric.add_batch(predictions=preds[start:start + 128], references=refs[start:start + 128])
    out = metric.compute(num_classes=7)
    assert out['num_samples'] == 500
    assert out['accuracy'] == pytest.approx((preds == refs).mean())
    assert out['mean_class_accuracy'] == pytest.approx(balanced_accuracy_score(refs, preds))
    assert out['macro_f1'] == pytest.approx(f1_score(refs, preds, average='macro'))
    np.testing.assert_allclose(out['per_class_recall'][:6], recall_score(refs, preds, average=None, labels=range(6)))
    assert out['per_class_recall'][6] is None
    np.testing.assert_array_equal(out['confusion_matrix'], confusion_matrix(refs, preds, labels=range(7)))


def test_metrics_reject_out_of_range_labels():
    metric = load_fer_metrics()
    metric.add_batch(predictions=[0, 7], references=[0, 1])
    with pytest.raises(ValueError, match=r'outside \[0, 7\)'):
        metric.compute(num_classes=7)


@pytest.mark.parametrize('name', ['rafdb', 'affectnet7', 'affectnet8', 'sfew', 'synthetic'])
def test_shipped_configs_load_and_state_their_source(name):
    cfg = load_config(CONFIGS / f'{name}.yaml')
    assert cfg.source and cfg.target
    assert cfg.num_classes == (8 if name in ('affectnet8', 'synthetic') else 7)


def test_rafdb_recipe_optimizer_decays_the_affinity_centres():
    cfg = load_config(CONFIGS / 'rafdb.yaml', {'backbone_pretrained': None, 'image_size': 32})
    assert (cfg.val_fraction, cfg.test_split, cfg.epochs, cfg.batch_size) == (0.1, 'test', 40, 256)
    model = create_train_model(cfg)
    loss_fn = create_loss(cfg, model)
    optimizer = create_optimizer(cfg, model, loss_fn)
    assert isinstance(optimizer, torch.optim.SGD)
    centres = loss_fn.affinity.centers
    group = next(g for g in optimizer.param_groups if any(p is centres for p in g['params']))
    assert (group['lr'], group['momentum'], group['weight_decay']) == (0.1, 0.9, 1e-4)
    scheduler = create_scheduler(cfg, optimizer)
    lrs = []
    for _ in range(21):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    assert lrs[9] == pytest.approx(0.1) and lrs[10] == pytest.approx(0.01) and lrs[20] == pytest.approx(0.001)


@pytest.mark.parametrize('name', ['sgd', 'adam', 'adamw'])
def test_optimizers_take_the_fused_step_of_the_per_parameter_loop(name):
    cfg = TrainConfig(num_classes=3, optimizer=name, lr=0.01, weight_decay=0.05)
    torch.manual_seed(0)
    model, centres = torch.nn.Linear(4, 3), torch.nn.Linear(2, 2)
    optimizer = create_optimizer(cfg, model, centres)
    assert [g['fused'] for g in optimizer.param_groups] == [True, True]
    params = [p for g in optimizer.param_groups for p in g['params']]
    copies = [p.detach().clone().requires_grad_() for p in params]
    kind = {'sgd': torch.optim.SGD, 'adam': torch.optim.Adam, 'adamw': torch.optim.AdamW}[name]
    extra = {'momentum': cfg.momentum} if name == 'sgd' else {}
    loop = kind(copies, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False, **extra)
    for _ in range(3):
        for p, c in zip(params, copies):
            p.grad = torch.randn_like(p)
            c.grad = p.grad.clone()
        optimizer.step()
        loop.step()
    for p, c in zip(params, copies):
        torch.testing.assert_close(p, c, rtol=1e-6, atol=1e-7)


def test_train_step_routes_small_map_convs_where_the_machine_gains(monkeypatch):
    """`TrainStep` resolves `small_map_convs` per machine (AVX2 CPUs), an explicit choice wins, and its forward
    runs the routed convs: a 64 px `dan_resnet18` step has 2 x 2 maps in layer4 and the heads."""
    from accelerate import Accelerator

    import timm_dan
    from timm_dan.models import small_map_convs as module
    accelerator = Accelerator(cpu=True)
    model = timm_dan.DAN(num_classes=3)
    train_module = DANTrainModule(model, timm_dan.DANLoss(3))
    optimizer = create_optimizer(TrainConfig(num_classes=3), model, train_module.loss_fn)
    for machine, expected in [('avx2', True), ('avx512_bf16', False)]:
        monkeypatch.setattr(module, 'machine_class', lambda device=None, m=machine: m)
        assert TrainStep(accelerator, train_module, optimizer).small_map_convs is expected
        assert TrainStep(accelerator, train_module, optimizer, small_map_convs=not expected).small_map_convs is (
            not expected)
    routed = []
    original = module._Conv2dMatmulWeightGrad.apply
    monkeypatch.setattr(module._Conv2dMatmulWeightGrad, 'apply', lambda *a: routed.append(1) or original(*a))
    for enabled in (False, True):
        step = TrainStep(accelerator, train_module, optimizer, small_map_convs=enabled)
        step(torch.randn(2, 3, 64, 64), torch.tensor([0, 2]))
        assert bool(routed) is enabled
    assert len(routed) >= 13  # layer4's 5 convs (4 + downsample), the heads' reduce and 3 x 4 split branch convs


def test_train_model_from_weights_names_loads_them(tmp_path):
    from timm.models import save_for_hf
    cfg = TrainConfig(num_classes=3)
    trained = create_train_model(cfg)
    save_for_hf(trained, str(tmp_path / 'run'), safe_serialization=True)
    loaded = create_train_model(TrainConfig(model=f'local-dir:{tmp_path / "run"}', num_classes=3, pretrained=True))
    assert type(loaded) is type(trained)
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    fresh = create_train_model(TrainConfig(model=f'local-dir:{tmp_path / "run"}', num_classes=3))  # as timm does
    assert not torch.equal(fresh.backbone.conv1.weight, trained.backbone.conv1.weight)
    with pytest.raises(RuntimeError, match="'timm-dan/no-such-model'"):  # load_pretrained's message, offline
        create_train_model(TrainConfig(model='hf-hub:timm-dan/no-such-model', pretrained=True))
    with pytest.raises(ConfigError, match='backbone_pretrained applies to a dan_'):
        create_train_model(TrainConfig(model=f'local-dir:{tmp_path / "run"}', backbone_pretrained='timm'))


def test_affectnet_recipe():
    cfg = load_config(CONFIGS / 'affectnet8.yaml')
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay) == ('adam', 1e-4, 0.0)
    assert (cfg.scheduler, cfg.gamma) == ('exponential', 0.6)
    assert cfg.balanced_sampler and cfg.epochs == 10 and cfg.dataset_options == {'num_classes': 8}


def test_demo_recipe_one_cycle_warms_up_then_decays():
    cfg = load_config(CONFIGS / 'synthetic.yaml', {'epochs': 2})
    model = torch.nn.Linear(2, 2)
    optimizer = create_optimizer(cfg, model, torch.nn.Linear(1, 1))
    scheduler = create_scheduler(cfg, optimizer, steps_per_epoch=10)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    peak = max(range(20), key=lrs.__getitem__)
    assert peak in (2, 3) and lrs[peak] == pytest.approx(cfg.lr) and lrs[0] < cfg.lr / 10 and lrs[-1] < cfg.lr / 10


def test_command_line_overrides_and_types(tmp_path):
    cfg = parse_config(['--config', str(CONFIGS / 'rafdb.yaml'), '--epochs', '2', '--batch-size', '64', '--lr',
                        '0.01', '--model', 'dan_resnet50', '--image-size', '112', '--seed', '1', '--deterministic',
                        '--resume', '--mixed-precision', 'fp32', '--channels-last', 'false',
                        '--dataset-options', '{aligned: false}'])
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.model, cfg.image_size, cfg.seed) == (
        2, 64, 0.01, 'dan_resnet50', 112, 1)
    assert cfg.deterministic and cfg.resume == 'latest' and cfg.precision == 'fp32' and cfg.channels_last is False
    assert cfg.dataset_options == {'aligned': False} and cfg.momentum == 0.9  # the rest from the file
    assert accelerate_mixed_precision(cfg.precision) == 'no'  # Accelerate's name for fp32


def test_old_names_warn_and_keep_their_values():
    import timm_dan.training
    from timm_dan.training import factory
    with pytest.warns(DeprecationWarning, match='use timm_dan.precision.accelerate_mixed_precision'):
        resolve_precision = timm_dan.training.resolve_precision
    assert [resolve_precision(p) for p in ('fp32', 'bf16', 'fp16')] == ['no', 'bf16', 'fp16']  # Accelerate's values
    with pytest.warns(DeprecationWarning, match='use timm_dan.training.create_train_model'):
        assert timm_dan.training.create_model is create_train_model
    with pytest.warns(DeprecationWarning, match='use timm_dan.training.create_train_model'):
        assert factory.create_model is create_train_model
    with pytest.raises(AttributeError, match='has no attribute'):
        timm_dan.training.no_such_name  # noqa: B018


def test_unknown_or_mistyped_keys_are_errors(tmp_path, capsys):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('epochs: 3\nlearning_rate: 0.1\n')
    with pytest.raises(ConfigError, match=r'bad.yaml: unknown config key `learning_rate`'):
        load_config(bad)
    bad.write_text('epochs: three\n')
    with pytest.raises(ConfigError, match=r'bad.yaml: `epochs` expects int, got \'three\''):
        load_config(bad)
    bad.write_text('optimizer: lamb\n')
    with pytest.raises(ConfigError, match='`optimizer` must be one of sgd, adam, adamw'):
        load_config(bad)
    with pytest.raises(SystemExit):
        parse_config(['--epoch', '2'])  # no abbreviations, no unknown options
    assert 'unrecognized arguments: --epoch 2' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(['--batch-size', 'big'])
    assert "invalid int value: 'big'" in capsys.readouterr().err


def test_dataset_options_the_data_set_does_not_take_are_a_config_error():
    from timm_dan.training.data import load_splits
    cfg = parse_config(['--dataset-options', '{num_samples:64, image_size:32}'])  # keys, not key: value pairs
    with pytest.raises(ConfigError, match=r"unknown options for synthetic: \['image_size:32', 'num_samples:64'\].*"
                                          r'space after each colon'):
        load_splits(cfg)


def test_help_lists_the_options_section_by_section():
    help_text = build_parser().format_help()
    starts = [help_text.index(f'\n{section}:\n') for section in SECTIONS]
    assert starts == sorted(starts)
    ends = starts[1:] + [help_text.index('\nThe defaults shown are')]
    section_text = {section: help_text[start:end] for section, start, end in zip(SECTIONS, starts, ends, strict=True)}
    fields = dataclasses.fields(TrainConfig)
    for f in fields:
        flag = re.compile(rf'^  --{f.name.replace("_", "-")}[ ,\n]', re.MULTILINE)
        assert [s for s, text in section_text.items() if flag.search(text)] == [f.metadata['section']], f.name
    assert {f.metadata['section'] for f in fields} == set(SECTIONS)
    assert re.search(r'^  --lr FLOAT ', section_text['optimisation'], re.MULTILINE)
    assert '--precision {auto,fp32,bf16,fp16}' in section_text['speed and precision']
    assert 'global: summed over processes' in section_text['optimisation']  # each option's help text


class _Items(torch.utils.data.Dataset):
    """Returns random numbers per item, from torch's and Python's RNGs (as a random augmentation would)."""

    def __len__(self):
        return 100

    def __getitems__(self, indices):
        return [torch.rand(3) + i + random.random() for i in indices]


def test_seeded_augmentation_depends_on_seed_epoch_and_indices_only():
    data = SeededAugmentation(_Items(), seed=3)
    torch.manual_seed(0)
    first = torch.stack(data.__getitems__([5, 7]))
    torch.manual_seed(123)  # a different process RNG state
    again = torch.stack(data.__getitems__([5, 7]))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.manual_seed(123)
    data.__getitems__([5, 7])
    assert torch.equal(torch.get_rng_state(), torch.random.manual_seed(123).get_state())  # untouched
    data.set_epoch(1)
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    assert not torch.equal(first, torch.stack(data.__getitems__([5, 7])))
    # the process's own RNG streams come back exactly as they were: its next draws are as without the call
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == python_state


def test_batched_training_loader_is_identical_with_0_and_2_workers(tmp_path):
    """The batch augmentation (in the collate) runs inside the seeded region: the same batches whatever the
    number of workers and the process's RNG state."""
    data = load_fer_dataset('synthetic', num_samples=24, num_validation_samples=8, image_size=40, seed=0,
                            cache_dir=str(tmp_path))['train']
    data_config = {'input_size': (3, 32, 32), 'mean': (0.5, 0.5, 0.5), 'std': (0.25, 0.25, 0.25),
                   'interpolation': 'bilinear'}
    normalize = DeviceNormalize(data_config)

    def epoch(workers, process_seed):
        loader = create_loader(data, data_config, batch_size=6, is_training=True, recipe='rafdb', num_workers=workers,
                               seed=5)
        for seeded in (loader.sampler, loader.dataset):
            seeded.set_epoch(1)
        torch.manual_seed(process_seed)
        return [normalize(batch) for batch in loader]

    in_process, two_workers = epoch(0, process_seed=1), epoch(2, process_seed=2)
    assert len(in_process) == len(two_workers) == 4
    for (x0, y0), (x2, y2) in zip(in_process, two_workers):
        assert x0.shape == (6, 3, 32, 32) and x0.dtype == torch.float32
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
    images = torch.cat([x for x, _ in in_process])
    assert (images == 0).all(1).flatten(1).any(1).any()  # augmented: some images carry an erased rectangle
    eval_loader = create_loader(data, data_config, batch_size=24, is_training=False, num_workers=0)
    plain, labels = normalize(next(iter(eval_loader)))
    order = torch.cat([y for _, y in in_process])
    assert sorted(order.tolist()) == sorted(labels.tolist()) and not torch.equal(images, plain)


def test_seeded_shuffle_sampler_is_a_permutation_per_epoch():
    sampler = SeededShuffleSampler(50, seed=1)
    epoch0 = list(sampler)
    assert sorted(epoch0) == list(range(50)) and list(sampler) == epoch0
    sampler.set_epoch(1)
    assert list(sampler) != epoch0


def _tiny_step(skip_nonfinite: bool):
    from accelerate import Accelerator
    cfg = TrainConfig(num_classes=3, optimizer='sgd', lr=0.01)
    model = create_train_model(cfg)
    loss_fn = create_loss(cfg, model)
    optimizer = create_optimizer(cfg, model, loss_fn)
    accelerator = Accelerator(cpu=True, mixed_precision='no')
    module, optimizer = accelerator.prepare(DANTrainModule(model, loss_fn), optimizer)
    return TrainStep(accelerator, module, optimizer, channels_last=False, skip_nonfinite=skip_nonfinite), module


def test_nonfinite_loss_stops_with_the_step_or_is_skipped():
    torch.manual_seed(0)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    bad = images.clone()
    bad[0, 0, 0, 0] = float('nan')

    step, _ = _tiny_step(skip_nonfinite=False)
    step(images, labels)
    step.check_finite()
    step(bad, labels)  # no host sync here: the error comes at the next check
    with pytest.raises(NonFiniteLossError, match='at micro-batch 1 '):
        step.check_finite()

    step, module = _tiny_step(skip_nonfinite=True)
    step(images, labels)
    before = {k: v.clone() for k, v in module.state_dict().items() if v.is_floating_point()}
    step(bad, labels)
    after = module.state_dict()
    assert step.skipped_steps == 1 and step.optimizer_steps == 1
    for k in ('model.fc.weight', 'loss_fn.affinity.centers', 'model.backbone.bn1.running_mean'):
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)
    losses = step.read_losses()
    assert np.isfinite(losses['loss']) and set(losses) == {'loss', 'ce', 'affinity', 'partition', 'va'}
    assert losses['va'] == 0  # no valence/arousal head


def test_best_folder_card_of_a_synthetic_run_is_fit_for_the_hub(tmp_path):
    """The card train.py writes into best/ (issue 17): licence named, no made-up Hub dataset ids, no empty
    sentence, and a warning that a model of the synthetic faces means nothing on real photos."""
    import timm
    from huggingface_hub import ModelCard

    from timm_dan.training.reporting import export_best
    cfg = TrainConfig(dataset='synthetic', num_classes=2)
    model = timm.create_model('dan_resnet18', num_classes=2).eval()
    results = {'validation': {'accuracy': 0.942, 'mean_class_accuracy': 0.94, 'macro_f1': 0.93}}
    best = export_best(model, tmp_path, cfg, results, {'train': 'train', 'validation': 'validation'},
                       ['neutral', 'happy'], {'input_size': (3, 64, 64)}, epoch=3)
    card = ModelCard.load(best / 'README.md')
    metadata = card.data.to_dict()
    assert metadata['license'] == 'other' and metadata['license_name'] == 'timm-dan-demo-weights'
    assert 'datasets' not in metadata and 'model-index' not in metadata  # 'synthetic' is no Hub data set
    assert '> **Warning: a demo model, not a facial expression recognizer.**' in card.text
    assert 'On real photos their predictions mean nothing' in card.text
    assert 'Faces as in' not in card.text and ': as in the training data' not in card.text
    assert '| validation | Top-1 accuracy (%) | 94.20 |' in card.text  # the measured numbers stay in the body
    assert f'timm.create_model("local-dir:{tmp_path / "best"}", pretrained=True)' in card.text


def test_confusion_matrix_json_is_compact(tmp_path):
    from timm_dan.training.reporting import compact_json, write_confusion_matrix
    metrics = {'accuracy': 0.5, 'confusion_matrix': [[3, 1], [2, 4]], 'per_class_recall': [0.75, 0.6667]}
    write_confusion_matrix(tmp_path, metrics, ['neutral', 'happy'], 'a title')
    text = (tmp_path / 'confusion_matrix.json').read_text()
    assert json.loads(text) == {'title': 'a title', 'label_names': ['neutral', 'happy'], **metrics}
    assert '  [3, 1],\n  [2, 4]\n' in text and ' "per_class_recall": [0.75, 0.6667]\n}' in text
    assert ' "label_names": ["neutral", "happy"],\n' in text and len(text.splitlines()) == 10
    assert compact_json({}) == '{}' and compact_json([[], {}]) == '[\n [],\n {}\n]'
