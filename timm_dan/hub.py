"""Hugging Face Hub folders and model cards for DAN weights.

One card generator (`render_model_card`) serves every card: converted official checkpoints, the MS-Celeb
ResNet-18 trunk, the family card `MODEL_CARD.md`, and the `best/` folder of a training run. A Hub folder is
what `timm.models.save_for_hf` writes (`config.json` with `label_names`, `model.safetensors`) plus the card as
`README.md`; it loads with `timm.create_model("local-dir:DIR", pretrained=True)` or, once uploaded,
`timm.create_model("hf-hub:NAMESPACE/NAME", pretrained=True)`.

    from timm_dan.hub import Metric, ModelCardInfo, save_model_folder
    card = ModelCardInfo(model_name='dan_resnet18 fine-tuned on RAF-DB', datasets=['rafdb'],
                         metrics=[Metric('accuracy', 88.9, 'rafdb', std=0.3, num_seeds=3)])
    save_model_folder(model, 'out/best', card=card, overwrite=True)
"""
import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import timm
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

from .models.dan import (
    LABELS,
    OFFICIAL_LABEL_MAPS,
    convert_official_checkpoint,
    load_weights_file,
)

__all__ = [
    'DatasetInfo', 'DATASETS', 'Metric', 'ModelCardInfo', 'CONFIG_NAME', 'WEIGHTS_NAME', 'CARD_NAME',
    'render_model_card', 'card_metadata', 'save_model_folder', 'sha256_file', 'check_model_folder',
    'load_model_folder', 'validate_model_folder', 'convert_official_file', 'convert_backbone_file',
    'create_model', 'missing_weights_message', 'load_manifest', 'official_card', 'family_card', 'push_model_folder',
    'USER_ERRORS', 'call_or_exit', 'DEFAULT_MANIFEST', 'print_folder',
]

CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'
CARD_NAME = 'README.md'
CODE_URL = 'https://github.com/yaoing/DAN'
PAPER_URL = 'https://arxiv.org/abs/2109.07270'
CARD_TAGS = ('image-classification', 'facial-expression-recognition', 'timm', 'dan')
DEFAULT_MANIFEST = Path(__file__).resolve().parents[1] / 'hub' / 'models.yaml'

CITATION = """@article{wen2023distract,
  title={Distract Your Attention: Multi-head Cross Attention Network for Facial Expression Recognition},
  author={Wen, Zhengyao and Lin, Wenzhong and Wang, Tao and Xu, Ge},
  journal={Biomimetics}, volume={8}, number={2}, pages={199}, year={2023},
  note={arXiv:2109.07270}
}"""

USER_ERRORS = (FileNotFoundError, FileExistsError, KeyError, ValueError, RuntimeError)
"""What the hub/ scripts report as a one-line error (bad input, missing files, no token), not a traceback."""

_NON_COMMERCIAL = 'Licensed for non-commercial research only; the images may not be redistributed.'


@dataclass(frozen=True)
class DatasetInfo:
    """What a card says about a training/evaluation data set."""
    name: str  # display name
    hub_id: str  # identifier for the card's `datasets:` front matter
    eval_split: str  # the split results are reported on
    faces: str  # what face crops the model trained on expects
    license: str
    url: str = ''
    config: Optional[str] = None  # model-index dataset config, tells apart e.g. AffectNet's 7- and 8-class tasks


DATASETS: dict[str, DatasetInfo] = {
    'rafdb': DatasetInfo(
        'RAF-DB (basic, 7 classes)', 'raf-db', 'test',
        'tightly aligned face crops (RAF-DB ships 100x100 faces aligned on the eyes, upsampled to 224x224); '
        'detect and align faces the same way before prediction', _NON_COMMERCIAL, 'http://www.whdeng.cn/raf/model1.html'),
    'affectnet7': DatasetInfo(
        'AffectNet (7 classes)', 'affectnet', 'validation',
        'loose, unaligned face crops of web photos (AffectNet\'s face boxes), resized to 224x224',
        _NON_COMMERCIAL, 'http://mohammadmahoor.com/affectnet/', '7-class'),
    'affectnet8': DatasetInfo(
        'AffectNet (8 classes)', 'affectnet', 'validation',
        'loose, unaligned face crops of web photos (AffectNet\'s face boxes), resized to 224x224',
        _NON_COMMERCIAL, 'http://mohammadmahoor.com/affectnet/', '8-class'),
    'fer2013': DatasetInfo(
        'FER2013', 'fer2013', 'test', '48x48 grayscale face crops (replicated to 3 channels), upsampled',
        _NON_COMMERCIAL),
    'ferplus': DatasetInfo(
        'FERPlus', 'ferplus', 'test', '48x48 grayscale face crops (FER2013 images), upsampled', _NON_COMMERCIAL),
    'sfew': DatasetInfo(
        'SFEW 2.0', 'sfew', 'validation', 'faces detected and cropped from film frames', _NON_COMMERCIAL),
    'expw': DatasetInfo(
        'ExpW', 'expw', 'test', 'faces cropped from web images with the data set\'s boxes', _NON_COMMERCIAL),
    'ms-celeb-1m': DatasetInfo(
        'MS-Celeb-1M', 'ms-celeb-1m', 'n/a', 'face-recognition crops of celebrities',
        'Withdrawn by Microsoft in 2019; it was released for non-commercial research only.'),
}

METRIC_NAMES = {
    'accuracy': 'Top-1 accuracy (%)',
    'mean_class_accuracy': 'Mean class accuracy (%)',
    'macro_f1': 'Macro F1 (%)',
}

FER_RISKS = """\
- A facial expression is not a felt emotion. The model labels the configuration of a face in one image;
  it cannot tell what a person feels, intends or is like, and expressions vary with culture, context and person.
- The training sets are known to be skewed in age, gender presentation and skin tone, and their labels carry
  the annotators' biases; accuracy is lower for under-represented groups and for posed vs. spontaneous faces.
- Accuracy falls on faces that are cropped or aligned differently from the training data, occluded, in profile,
  small or blurred.
- Do not use it to make or support decisions about people (hiring, education, policing, border control,
  insurance, health, credit) or for surveillance. Several jurisdictions (e.g. the EU AI Act) restrict
  emotion recognition in workplaces and schools."""


@dataclass
class Metric:
    """One evaluation result, with who measured it.

    `value` is in percent (88.9, not 0.889). With `std` (and `num_seeds`) the card shows mean ± std over seeds.
    """
    name: str  # 'accuracy', 'mean_class_accuracy', 'macro_f1' or another metric id
    value: float
    dataset: str  # a key of DATASETS (or a free name)
    split: Optional[str] = None  # default: the data set's evaluation split
    measured_by: str = 'timm-dan'  # e.g. 'the authors (Wen et al.)' for reported numbers
    source_url: Optional[str] = None
    std: Optional[float] = None
    num_seeds: Optional[int] = None

    def formatted(self) -> str:
        text = f'{self.value:.2f}'
        if self.std is not None:
            text += f' ± {self.std:.2f}'
            if self.num_seeds:
                text += f' ({self.num_seeds} seeds)'
        return text


@dataclass
class ModelCardInfo:
    """Everything a model card states. Only `model_name` and `datasets` are required."""
    model_name: str
    datasets: list[str]
    label_names: Sequence[str] = ()
    metrics: list[Metric] = field(default_factory=list)
    description: str = ''
    architecture: str = 'dan_resnet18'
    repo_id: Optional[str] = None  # Hub repo the folder is published to (for the usage lines)
    load_name: Optional[str] = None  # name for timm.create_model in the usage lines; default from repo_id
    recipe: Union[str, dict[str, str]] = ''  # training recipe, text or {item: value}
    source_file: Optional[str] = None  # the file these weights came from
    source_sha256: Optional[str] = None
    source_url: Optional[str] = None
    license: str = 'other'  # Hub licence id of the weights
    license_name: Optional[str] = None  # for license 'other'
    license_text: str = ''  # what the licence of the weights is, in words
    num_params: Optional[int] = None
    preprocessing: dict[str, Any] = field(default_factory=dict)  # input_size, mean, std, crop_pct, interpolation
    published: list[dict[str, str]] = field(default_factory=list)  # family card: tag, repo_id, source, status
    base_model: Optional[str] = None
    usage_note: str = ''  # replaces the sentence after the usage lines
    extra_tags: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'ModelCardInfo':
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f'Unknown model card fields {unknown}; expected some of {sorted(names)}')
        data = dict(data)
        data['metrics'] = [m if isinstance(m, Metric) else Metric(**m) for m in data.get('metrics', ())]
        if isinstance(data.get('datasets'), str):
            data['datasets'] = [data['datasets']]
        return cls(**data)


def _dataset(key: str) -> DatasetInfo:
    return DATASETS.get(key) or DatasetInfo(key, key, 'test', 'as in the training data', 'see the data set\'s terms')


def card_metadata(info: ModelCardInfo) -> ModelCardData:
    """The card's front matter: what the Hub reads (library, licence, tags, data sets, model-index)."""
    results = []
    for m in info.metrics:
        ds = _dataset(m.dataset)
        name = METRIC_NAMES.get(m.name, m.name)
        if m.std is not None:
            name += f', mean ± {m.std:.2f} std' + (f' over {m.num_seeds} seeds' if m.num_seeds else '')
        if not m.source_url:  # the Hub wants a url with a source name; say who measured in the name instead
            name += f', measured by {m.measured_by}'
        results.append(EvalResult(
            task_type='image-classification', task_name='Facial expression recognition',
            dataset_type=ds.hub_id, dataset_name=ds.name, dataset_config=ds.config,
            dataset_split=m.split or ds.eval_split, metric_type=m.name, metric_name=name,
            metric_value=round(m.value, 2),
            source_name=f'measured by {m.measured_by}' if m.source_url else None, source_url=m.source_url,
        ))
    extra = {'base_model': info.base_model} if info.base_model else {}
    return ModelCardData(
        library_name='timm', license=info.license, license_name=info.license_name,
        tags=list(dict.fromkeys([*CARD_TAGS, *info.extra_tags])),
        datasets=list(dict.fromkeys(_dataset(d).hub_id for d in info.datasets)),
        pipeline_tag='image-classification', model_name=info.model_name,
        eval_results=results or None, **extra,
    )


def _usage_name(info: ModelCardInfo) -> str:
    if info.load_name:
        return info.load_name
    return f'hf-hub:{info.repo_id}' if info.repo_id else 'local-dir:PATH/TO/THIS/FOLDER'


def _section(title: str, body: str) -> str:
    return f'\n## {title}\n\n{body.strip()}\n'


def _details(info: ModelCardInfo) -> str:
    is_dan = info.architecture.startswith('dan_')
    kind = ' (DAN: CNN trunk, 4 cross-attention heads, attention fusion)' if is_dan else ''
    rows = [f'- **Architecture:** `{info.architecture}`{kind}']
    if info.num_params:
        rows.append(f'- **Parameters:** {info.num_params:,}')
    if info.label_names:
        rows.append(f'- **Classes:** {len(info.label_names)}')
    rows.append(f'- **Training data:** {", ".join(_dataset(d).name for d in info.datasets)}')
    rows.append(f'- **Paper:** [Distract Your Attention (Wen et al.)]({PAPER_URL}); authors\' code: {CODE_URL} (MIT)')
    if info.source_file:
        sha = info.source_sha256 or 'unknown until converted'
        rows.append(f'- **Converted from:** `{info.source_file}` (SHA-256 `{sha}`)'
                    + (f', {info.source_url}' if info.source_url else ''))
    return '\n'.join(rows)


def _usage(info: ModelCardInfo) -> str:
    return (
        '```python\n'
        'import timm, timm_dan  # `pip install timm-dan`; importing timm_dan registers the dan_* models\n'
        f'model = timm.create_model("{_usage_name(info)}", pretrained=True).eval()\n'
        'transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))\n'
        '```\n\n'
        + (info.usage_note or 'Then `model(transform(face).unsqueeze(0)).softmax(-1)` gives the class probabilities '
           'of a PIL face crop `face`, in the order of `model.pretrained_cfg["label_names"]`.')
    )


def _preprocessing(info: ModelCardInfo) -> str:
    rows = []
    p = info.preprocessing
    if p:
        size = p.get('input_size', (3, 224, 224))
        rows.append(
            f'- Input {size[1]}x{size[2]} RGB, resized with {p.get("interpolation", "bilinear")} interpolation '
            f'(crop_pct {p.get("crop_pct", 1.0)}), normalised with mean {tuple(p.get("mean", ()))} '
            f'and std {tuple(p.get("std", ()))}; `resolve_model_data_config` reads these from the config.')
    faces = {}  # data sets that share a description (AffectNet's 7 and 8 classes) share a line
    for key in info.datasets:
        faces.setdefault(_dataset(key).faces, []).append(_dataset(key).name)
    rows += [f'- Faces as in {" and ".join(names)}: {text}.' for text, names in faces.items()]
    rows.append('- The model classifies a face crop; it does not find faces. Run a face detector first.')
    return '\n'.join(rows)


def _recipe(info: ModelCardInfo) -> str:
    if isinstance(info.recipe, str):
        return info.recipe
    return '\n'.join(f'- **{k}:** {v}' for k, v in info.recipe.items())


def _evaluation(info: ModelCardInfo) -> str:
    lines = ['| data set | split | metric | value | measured by |', '|---|---|---|---|---|']
    for m in info.metrics:
        ds = _dataset(m.dataset)
        lines.append(f'| {ds.name} | {m.split or ds.eval_split} | {METRIC_NAMES.get(m.name, m.name)} | '
                     f'{m.formatted()} | {m.measured_by} |')
    return '\n'.join(lines)


def _licences(info: ModelCardInfo) -> str:
    weights = info.license_text or f'`{info.license}`; weights trained on the data below inherit its terms'
    rows = [f'- **Weights:** {weights}']
    releases = {}  # one line per data set release (AffectNet's 7- and 8-class tasks share one)
    for key in info.datasets:
        ds = _dataset(key)
        releases.setdefault((ds.url, ds.license), ds.name.split(' (')[0])
    rows += [f'- **{name}:** {licence}' + (f' ({url})' if url else '') for (url, licence), name in releases.items()]
    rows.append('- **Code:** timm-dan and the authors\' DAN code are MIT-licensed.')
    return '\n'.join(rows)


def _published(info: ModelCardInfo) -> str:
    lines = ['| timm name | Hub repo | converted from | status |', '|---|---|---|---|']
    for row in info.published:
        lines.append(f'| `{row["tag"]}` | [`{row["repo_id"]}`](https://huggingface.co/{row["repo_id"]}) | '
                     f'`{row["source"]}` | {row["status"]} |')
    return '\n'.join(lines)


def render_model_card(info: Union[ModelCardInfo, Mapping[str, Any]]) -> str:
    """The model card (front matter + body) as Markdown text, ready for README.md."""
    info = info if isinstance(info, ModelCardInfo) else ModelCardInfo.from_dict(info)
    body = f'\n# Model card for {info.model_name}\n'
    if info.description:
        body += f'\n{info.description.strip()}\n'
    body += _section('Model details', _details(info))
    if info.published:
        body += _section('Published weights', _published(info))
    body += _section('How to use', _usage(info))
    if info.label_names:
        body += _section('Labels (in output order)', '\n'.join(
            f'{i}. `{name}`' for i, name in enumerate(info.label_names)))
    body += _section('Preprocessing', _preprocessing(info))
    if info.recipe:
        body += _section('Training', _recipe(info))
    if info.metrics:
        body += _section('Evaluation', _evaluation(info))
    body += _section('Licences', _licences(info))
    body += _section('Limitations and risks', FER_RISKS)
    body += _section('Citation', f'```bibtex\n{CITATION}\n```')
    return f'---\n{card_metadata(info).to_yaml()}\n---\n{body}'


def sha256_file(path: Union[str, Path], chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _replace_dir(tmp: Path, output_dir: Path, overwrite: bool) -> None:
    if not output_dir.exists():
        os.replace(tmp, output_dir)
        return
    if not overwrite:
        raise FileExistsError(f'{output_dir} exists; pass overwrite=True to replace it')
    old = output_dir.with_name(f'.{output_dir.name}.old-{uuid.uuid4().hex[:8]}')
    os.replace(output_dir, old)
    try:
        os.replace(tmp, output_dir)
    except BaseException:
        os.replace(old, output_dir)
        raise
    shutil.rmtree(old)


def save_model_folder(
        model: torch.nn.Module,
        output_dir: Union[str, Path],
        *,
        card: Union[ModelCardInfo, Mapping[str, Any]],
        data_config: Optional[dict[str, Any]] = None,
        model_config: Optional[dict[str, Any]] = None,
        overwrite: bool = False,
) -> Path:
    """Write a timm Hub folder: config.json (with label_names), model.safetensors and the card as README.md.

    The folder is written beside `output_dir` under a temporary name and renamed into place, so a crash leaves
    either the previous folder or the complete new one, never a half-written one (a killed process may leave a
    hidden `.NAME.tmp-*` or `.NAME.old-*` folder beside it). Pass an unwrapped model (`accelerator.unwrap_model`,
    not DDP or `torch.compile` wrappers): its `state_dict` keys are what timm loads. `card.label_names` (default:
    the model's `pretrained_cfg['label_names']`) must have one name per output class. The card's parameter
    count and preprocessing are filled from the model when not given.

    Returns:
        The folder path.
    """
    output_dir = Path(output_dir)
    info = card if isinstance(card, ModelCardInfo) else ModelCardInfo.from_dict(card)
    labels = tuple(info.label_names or model.pretrained_cfg.get('label_names') or ())
    num_classes = getattr(model, 'num_classes', 0)
    if num_classes and len(labels) != num_classes:
        raise ValueError(f'The model has {num_classes} classes but the card names {len(labels)} labels: {labels}')
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f'{output_dir} exists; pass overwrite=True to replace it')
    data = timm.data.resolve_data_config(dict(data_config or {}), model=model)
    info = dataclasses.replace(
        info, label_names=labels,
        num_params=info.num_params or sum(p.numel() for p in model.parameters()),
        preprocessing=info.preprocessing or {k: data[k] for k in
                                             ('input_size', 'interpolation', 'mean', 'std', 'crop_pct') if k in data},
    )
    model_config = dict(model_config or {})
    # the model's pretrained cfg may describe the weights it was created from; this folder holds others
    model_config['pretrained_cfg'] = {
        'tag': info.model_name.partition('.')[2] or None, 'description': info.description or info.model_name,
        'license': info.license, **model_config.get('pretrained_cfg', {}),
    }
    if labels:
        model_config['label_names'] = list(labels)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f'.{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}')
    tmp.mkdir()  # permissions from the umask, like any folder the user makes
    try:
        timm.models.save_for_hf(model, tmp, model_config=model_config, safe_serialization=True,
                                data_config=data_config)
        (tmp / CARD_NAME).write_text(render_model_card(info), encoding='utf-8')
        for f in tmp.iterdir():  # safetensors writes 0600 files; give them the folder's permissions
            f.chmod(tmp.stat().st_mode & 0o666)
        _replace_dir(tmp, output_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def check_model_folder(folder: Union[str, Path], require_card: bool = False) -> Path:
    """Raise FileNotFoundError naming each file a Hub folder lacks (config.json, model.safetensors, README.md)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder} is not a folder')
    needed = [CONFIG_NAME, WEIGHTS_NAME] + ([CARD_NAME] if require_card else [])
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f'{folder} is not a complete timm Hub folder: missing {", ".join(missing)} '
            f'(write one with timm_dan.hub.save_model_folder or hub/convert_official.py)'
        )
    return folder


def load_model_folder(folder: Union[str, Path], **kwargs: Any) -> torch.nn.Module:
    """`timm.create_model("local-dir:FOLDER", pretrained=True)`, after checking the folder holds its files."""
    folder = check_model_folder(folder)
    return timm.create_model(f'local-dir:{folder}', pretrained=True, **kwargs)


def validate_model_folder(folder: Union[str, Path]) -> dict[str, Any]:
    """Load the folder, run a forward pass, parse the card; return what would be published.

    Returns:
        {'files': {name: bytes}, 'metadata': the card's front matter as a dict, 'num_classes',
         'label_names', 'output_shape'}.
    """
    folder = check_model_folder(folder, require_card=True)
    card = ModelCard.load(folder / CARD_NAME)
    if card.data.library_name != 'timm':
        raise ValueError(f'{folder / CARD_NAME}: front matter must say library_name: timm, '
                         f'got {card.data.library_name!r}')
    config = json.loads((folder / CONFIG_NAME).read_text())
    labels = config.get('label_names') or ()
    num_classes = config.get('num_classes', 0)
    if num_classes and len(labels) != num_classes:
        raise ValueError(f'{folder / CONFIG_NAME}: num_classes is {num_classes} but label_names has {len(labels)}')
    model = load_model_folder(folder).eval()
    size = timm.data.resolve_model_data_config(model)['input_size']
    with torch.no_grad():
        out = model(torch.randn(2, *size))
    if not torch.isfinite(out).all():
        raise ValueError(f'{folder}: the forward pass gave non-finite outputs')
    return {
        'files': {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()},
        'metadata': card.data.to_dict(),
        'num_classes': num_classes,
        'label_names': list(labels),
        'output_shape': list(out.shape),
    }


def load_manifest(path: Union[str, Path] = DEFAULT_MANIFEST) -> dict[str, Any]:
    """The manifest of what the project publishes on the Hub (`hub/models.yaml`)."""
    import yaml
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def _manifest_entry(manifest: Mapping[str, Any], **match: str) -> Optional[dict[str, Any]]:
    for entry in manifest.get('models', []) + manifest.get('backbones', []):
        if all(entry.get(k) == v for k, v in match.items()):
            return entry
    return None


def official_card(entry: Mapping[str, Any], **overrides: Any) -> ModelCardInfo:
    """The card of an official checkpoint from its manifest entry (`hub/models.yaml`, `models:`)."""
    source = entry['source']
    info = ModelCardInfo(
        model_name=entry['tag'], datasets=[entry['dataset']], label_names=LABELS[:entry['num_classes']],
        metrics=[Metric(dataset=entry['dataset'], **m) for m in entry.get('metrics', ())],
        description=entry['description'], repo_id=entry['repo_id'], recipe=entry.get('recipe', ''),
        source_file=source['file'], source_sha256=source.get('sha256'), source_url=source.get('url'),
        license=entry['license'], license_name=entry.get('license_name'), license_text=entry['license_text'],
    )
    return dataclasses.replace(info, **overrides)


def family_card(manifest: Mapping[str, Any]) -> ModelCardInfo:
    """The card of the whole `dan_resnet18` family (root MODEL_CARD.md): every published repo, all results."""
    models = manifest['models']
    default = next(m for m in models if m.get('default'))
    rows = [dict(tag=m['tag'], repo_id=m['repo_id'], source=m['source']['file'], status=m['status'])
            for m in models + manifest.get('backbones', [])]
    recipe = {DATASETS[m['dataset']].name: '; '.join(f'{k} {v}' for k, v in m['recipe'].items()) for m in models}
    datasets = list(dict.fromkeys(m['dataset'] for m in models))
    return ModelCardInfo(
        model_name=manifest['family'], datasets=datasets, label_names=LABELS,
        metrics=[Metric(dataset=m['dataset'], **x) for m in models for x in m.get('metrics', ())],
        description=manifest['description'], load_name=default['tag'], recipe=recipe,
        license=default['license'], license_name=default.get('license_name'), license_text=default['license_text'],
        published=rows, preprocessing=manifest.get('preprocessing', {}),
        usage_note=manifest.get('usage_note', ''),
    )


def convert_official_file(
        path: Union[str, Path],
        dataset: str,
        output_dir: Union[str, Path],
        *,
        manifest: Optional[Mapping[str, Any]] = None,
        overwrite: bool = False,
) -> Path:
    """Convert one of the authors' `.pth` files into a timm Hub folder with its card.

    The file is read with `torch.load(weights_only=True)` (a file needing a full unpickle is refused) and
    converted with `convert_official_checkpoint` (canonical class order); its name and SHA-256 go on the card.
    When the manifest records a SHA-256 for this data set, a different file is refused.
    """
    path = Path(path)
    manifest = load_manifest() if manifest is None else manifest
    entry = _manifest_entry(manifest, dataset=dataset)
    if entry is None:
        raise ValueError(f'No official model for dataset {dataset!r} in the manifest')
    sha = sha256_file(path)
    known = entry['source'].get('sha256')
    if known and known != sha:
        raise ValueError(f'{path} has SHA-256 {sha}, but the manifest records {known} for {entry["source"]["file"]}')
    checkpoint = load_weights_file(str(path))
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict')
    state_dict = convert_official_checkpoint(checkpoint, dataset)
    model = timm.create_model(entry['tag'], pretrained=False).eval()
    model.load_state_dict(state_dict, strict=True)
    card = official_card(entry, source_file=path.name, source_sha256=sha)
    return save_model_folder(model, output_dir, card=card, overwrite=overwrite)


def convert_backbone_file(
        path: Union[str, Path],
        output_dir: Union[str, Path],
        *,
        manifest: Optional[Mapping[str, Any]] = None,
        overwrite: bool = False,
) -> Path:
    """Convert the paper's MS-Celeb-1M ResNet-18 (`{'state_dict': torchvision keys}`) into a timm `resnet18` folder.

    Train DAN from it with `timm.create_model("dan_resnet18", backbone_pretrained="DIR/model.safetensors")`.
    """
    from .models.dan import load_backbone_weights
    path = Path(path)
    manifest = load_manifest() if manifest is None else manifest
    entry = _manifest_entry(manifest, architecture='resnet18')
    sha = sha256_file(path)
    model = timm.create_model('resnet18', num_classes=0).eval()
    load_backbone_weights(model, str(path))
    model.pretrained_cfg = {**model.pretrained_cfg, 'license': entry['license'], 'tag': entry['tag'].split('.')[-1]}
    card = ModelCardInfo(
        model_name=entry['tag'], datasets=[entry['dataset']], architecture='resnet18',
        description=entry['description'], repo_id=entry['repo_id'], source_file=path.name, source_sha256=sha,
        source_url=entry['source'].get('url'), license=entry['license'], license_name=entry.get('license_name'),
        license_text=entry['license_text'], usage_note=entry['usage_note'],
    )
    return save_model_folder(model, output_dir, card=card, overwrite=overwrite)


def missing_weights_message(repo_id: str, manifest: Optional[Mapping[str, Any]] = None) -> str:
    """What to tell a user whose weights for `repo_id` are neither cached nor downloadable.

    Names the repo and the two ways out: go online, or convert the authors' file for that data set (its name
    from the manifest when it is at hand, e.g. in a source checkout) and load it with `local-dir:`.
    """
    if manifest is None and DEFAULT_MANIFEST.is_file():
        manifest = load_manifest()
    entry = _manifest_entry(manifest or {}, repo_id=repo_id)
    dataset = repo_id.rsplit('.', 1)[-1]
    if dataset in OFFICIAL_LABEL_MAPS:
        source = entry['source']['file'] if entry else f"the authors' {dataset} checkpoint (.pth)"
        local = f'dan-{dataset}'
    else:
        source, dataset, local = 'CHECKPOINT.pth', '{rafdb,affectnet7,affectnet8}', 'DIR'
    return (
        f'Could not get the weights of the Hugging Face Hub repo {repo_id!r}: they are not in the local cache, '
        f'and the Hub could not be reached or has no such repo. Either go online (unset HF_HUB_OFFLINE) so that '
        f'they download once into the cache, or convert the authors\' checkpoint yourself: '
        f'`python hub/convert_official.py {source} --dataset {dataset} --output-dir {local}` and load it with '
        f'timm.create_model("local-dir:{local}", pretrained=True).'
    )


def create_model(model_name: str, pretrained: bool = False, **kwargs: Any) -> torch.nn.Module:
    """`timm.create_model` with one clear error when Hub weights are missing, also for `hf-hub:` names.

    Registered tags (`dan_resnet18.rafdb`) already get that error from the model file; `hf-hub:ID` names fail
    inside timm before any DAN code runs, so they are wrapped here.
    """
    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except (LocalEntryNotFoundError, EntryNotFoundError, HfHubHTTPError) as e:
        if not model_name.startswith('hf-hub:'):
            raise
        repo_id = model_name[len('hf-hub:'):].split('@')[0]
        raise RuntimeError(missing_weights_message(repo_id)) from e



def push_model_folder(
        folder: Union[str, Path],
        repo_id: str,
        *,
        private: bool = False,
        create_pr: bool = False,
        dry_run: bool = False,
        token: Optional[str] = None,
        commit_message: str = 'Upload DAN weights (timm-dan)',
) -> dict[str, Any]:
    """Validate a Hub folder (load, forward pass, card metadata) and upload it with `huggingface_hub`.

    The token comes from `token` or the usual places (`HF_TOKEN`, `hf auth login`). With `dry_run` nothing
    is uploaded (and no token needed).

    Returns:
        `validate_model_folder`'s summary plus `repo_id` and, after an upload, `url` (the commit or PR).
    """
    from huggingface_hub import HfApi, constants, get_token

    summary = validate_model_folder(folder)
    summary['repo_id'] = repo_id
    if dry_run:
        return summary
    if constants.HF_HUB_OFFLINE:
        raise RuntimeError('HF_HUB_OFFLINE is set: unset it to upload (or use --dry-run)')
    token = token or get_token()
    if not token:
        raise RuntimeError(
            'No Hugging Face token found: run `hf auth login`, or set HF_TOKEN to a token with write access '
            f'to {repo_id.split("/")[0]!r} (https://huggingface.co/settings/tokens)'
        )
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, create_pr=create_pr, commit_message=commit_message,
        allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME],
    )
    summary['url'] = commit.pr_url if create_pr else commit.commit_url
    return summary


def print_folder(folder: Union[str, Path]) -> None:
    """Print a Hub folder's files and the SHA-256 its card records (what the conversion scripts report)."""
    folder = Path(folder)
    print(f'Wrote {folder}:')
    for p in sorted(folder.iterdir()):
        print(f'  {p.name}  {p.stat().st_size:,} bytes')
    card = ModelCard.load(folder / CARD_NAME)
    for line in card.text.splitlines():
        if line.startswith('- **Converted from:**'):
            print(line.removeprefix('- **Converted from:** '))
    print(f'Load it with timm.create_model("local-dir:{folder}", pretrained=True) after `import timm_dan`.')


def call_or_exit(parser: argparse.ArgumentParser, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run `fn` for a hub/ script; a USER_ERRORS exception ends the script with a one-line error, exit status 1."""
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as e:
        parser.exit(1, f'{parser.prog}: error: {e.args[0] if isinstance(e, KeyError) else e}\n')
