"""Model cards for DAN weights: what a card states (`ModelCardInfo`) and the one generator for every card."""
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from huggingface_hub import EvalResult, ModelCardData

from ..data.registry import CARD_ENTRIES, CardEntry
from ..data.sources.base import NON_COMMERCIAL
from ..models.pretrained import find_weights

CODE_URL = 'https://github.com/yaoing/DAN'
PAPER_URL = 'https://arxiv.org/abs/2109.07270'
CARD_TAGS = ('image-classification', 'facial-expression-recognition', 'timm', 'dan')

CITATION = """@article{wen2023distract,
  title={Distract Your Attention: Multi-head Cross Attention Network for Facial Expression Recognition},
  author={Wen, Zhengyao and Lin, Wenzhong and Wang, Tao and Xu, Ge},
  journal={Biomimetics}, volume={8}, number={2}, pages={199}, year={2023},
  note={arXiv:2109.07270}
}"""

DatasetInfo = CardEntry
"""What a card says about a training/evaluation data set (declared with each data set's source file)."""

DATASETS: dict[str, DatasetInfo] = {
    **CARD_ENTRIES,
    'ms-celeb-1m': DatasetInfo(
        'MS-Celeb-1M', 'ms-celeb-1m', 'n/a', 'face-recognition crops of celebrities',
        'Withdrawn by Microsoft in 2019; it was released for non-commercial research only.'),
    'synthetic': DatasetInfo(
        "timm-dan's synthetic faces (a procedural demo set)", '', 'validation', '',
        "Drawn by timm-dan's code (MIT) in memory; no real face is in it."),
}
"""Card entries by key: the FER data sets' (`timm_dan.data.registry.CARD_ENTRIES`), the backbone's MS-Celeb-1M and
the synthetic demo set. An empty `hub_id` is a data set that is not on the Hub: the card's `datasets:` and
model-index leave it out (the Hub reads them as Hub dataset ids); an empty `faces` says nothing about the crops."""

DEMO_WARNING = (
    '> **Warning: a demo model, not a facial expression recognizer.** These weights were trained on timm-dan\'s '
    'synthetic faces: cartoon faces drawn from each expression\'s FACS prototype, made to check that training runs '
    'end to end. On real photos their '
    'predictions mean nothing, and the accuracy below is measured on synthetic faces only. Do not use or publish '
    'them as a FER model; train on a real data set (`train_scripts/configs/`) for that.')
DEMO_DATASETS = frozenset({'synthetic'})
"""Data sets whose models get `DEMO_WARNING` at the top of their card."""

VA_METRIC_NAMES = {
    f'{dimension}_{key}': f'{dimension.capitalize()} {text}'
    for dimension in ('valence', 'arousal')
    for key, text in (('ccc', 'CCC'), ('pcc', 'PCC'), ('rmse', 'RMSE'), ('sagr', 'sign agreement (SAGR)'))
}
"""Card names of the valence/arousal metrics (values as they are, in [-1, 1] or [0, 1], not percent)."""

CALIBRATION_METRIC_NAMES = {
    'ece': 'Expected calibration error (%, 15 bins, temperature-scaled)',
    'ece_uncalibrated': 'Expected calibration error (%, 15 bins, raw softmax)',
}

METRIC_NAMES = {
    'accuracy': 'Top-1 accuracy (%)',
    'mean_class_accuracy': 'Mean class accuracy (%)',
    'macro_f1': 'Macro F1 (%)',
    **VA_METRIC_NAMES,
    **CALIBRATION_METRIC_NAMES,
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

    `value` is in percent for rates (88.9, not 0.889; ECE too); valence/arousal CCC, PCC, RMSE and SAGR are as they
    are (0.85). With `std` (and `num_seeds`) the card shows mean ± std over seeds.
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
    valence_arousal: bool = False  # the model has a valence/arousal head (`va_head=True`)
    calibration: dict[str, Any] = field(default_factory=dict)  # reporting.calibration_summary: temperature, ECE/NLL
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> column -> metrics.group_metrics

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
    """The card entry of `key`; an unknown key is a data set of the user's (a Hub id when it holds a '/')."""
    return DATASETS.get(key) or DatasetInfo(key, key if '/' in key else '', 'test', '', "see the data set's terms")


def license_name(info: 'ModelCardInfo') -> Optional[str]:
    """The card's `license_name`: the one given, else for `license: other` an id that says where the terms come
    from (the Hub asks for one with 'other'): the training data's non-commercial terms, or demo weights."""
    if info.license != 'other' or info.license_name:
        return info.license_name
    if set(info.datasets) & DEMO_DATASETS:
        return 'timm-dan-demo-weights'
    if info.datasets and all(_dataset(d).license == NON_COMMERCIAL for d in info.datasets):
        return 'non-commercial-research'
    return 'same-terms-as-the-training-data'


def card_metadata(info: ModelCardInfo) -> ModelCardData:
    """The card's front matter: what the Hub reads (library, licence, tags, data sets, model-index)."""
    results = []
    for m in info.metrics:
        ds = _dataset(m.dataset)
        if not ds.hub_id:  # model-index needs a Hub dataset id; the Evaluation table still shows the result
            continue
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
    hub_ids = list(dict.fromkeys(_dataset(d).hub_id for d in info.datasets if _dataset(d).hub_id))
    return ModelCardData(
        library_name='timm', license=info.license, license_name=license_name(info),
        tags=list(dict.fromkeys([*CARD_TAGS, *info.extra_tags])),
        datasets=hub_ids or None,
        pipeline_tag='image-classification', model_name=info.model_name,
        eval_results=results or None, **extra,
    )


def card_for_repo(text: str, repo_id: str) -> str:
    """A card's text with its "How to use" loading the Hub repo `repo_id` (`hf-hub:NAMESPACE/NAME`) instead of the
    name it was written with (e.g. `local-dir:runs/synthetic/best`): what `push_model_folder` uploads."""
    head, found, rest = text.partition('\n## How to use\n')
    if not found:
        return text
    section, next_title, tail = rest.partition('\n## ')
    match = re.search(r'timm\.create_model\("([^"]+)"', section)
    if match is None:
        return text
    old = match.group(1)
    section = section.replace(f'"{old}"', f'"hf-hub:{repo_id}"')
    bare = old.partition(':')[2] if old.startswith(('local-dir:', 'hf-hub:')) else ''
    if bare:  # other loaders in the section (e.g. from_pretrained) name the folder or repo without the prefix
        section = section.replace(f'"{bare}"', f'"{repo_id}"')
    return head + found + section + next_title + tail


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


def _transformers_usage(info: ModelCardInfo) -> str:
    """The transformers route: `pipeline` / `AutoModelForImageClassification` build the model through timm
    (`TimmWrapperForImageClassification`), so `import timm_dan` must come first to register the architecture."""
    name = info.repo_id or info.load_name or ''
    if not info.repo_id and ':' in name:
        name = name.partition(':')[2]  # hf-hub:ID -> ID, local-dir:DIR -> DIR
    elif not info.repo_id:
        weights = find_weights(name=name)
        name = weights.hf_hub_id if weights else 'PATH/TO/THIS/FOLDER'
    return (
        '```python\n'
        'import timm_dan  # first: transformers builds timm models by name, and this registers dan_*\n'
        'from transformers import pipeline\n'
        f'classifier = pipeline("image-classification", model="{name}")\n'
        f'classifier(face, top_k={len(info.label_names)})  # a face crop (PIL image, path or URL) -> '
        '[{"label": ..., "score": ...}]\n'
        '```\n\n'
        f'`AutoModelForImageClassification.from_pretrained("{name}")` with `AutoImageProcessor` works too; the '
        'labels are `model.config.id2label`, the preprocessing is timm\'s own (the same probabilities as above).'
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
    rows += [f'- Faces as in {" and ".join(names)}: {text}.' for text, names in faces.items() if text]
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
    name = license_name(info)
    if set(info.datasets) & DEMO_DATASETS:
        default = 'demo weights; no licence chosen: set one in the card before sharing them'
    else:
        default = 'weights trained on the data below inherit its terms'
    weights = info.license_text or f'`{info.license}`' + (f' (`{name}`)' if name else '') + f'; {default}'
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


def _calibration_body(c: Mapping[str, Any]) -> str:
    rows = ['| split | ECE before | ECE after | NLL before | NLL after |', '|---|---|---|---|---|']
    for entry in c['splits'].values():
        b, a = entry['before'], entry['after']
        split = entry['split'] + (' (T fitted here)' if entry['split'] == c['fitted_on'] else '')
        rows.append(f'| {split} | {100 * b["ece"]:.2f}% | {100 * a["ece"]:.2f}% | {b["nll"]:.4f} | {a["nll"]:.4f} |')
    return (f'The probabilities are temperature-scaled (Guo et al. 2017): softmax(logits / T) with T = '
            f'{c["temperature"]:.4f}, fitted on {c["fitted_on"]} by minimising the NLL (L-BFGS), never on a test '
            f'split (on the split it was fitted on, the figures after it are in-sample). `config.json` stores T '
            f'(`model_args.temperature`, read back as `model.temperature`); `FERPredictor` applies it and keeps the '
            f'raw logits in `face.logits`. Expected calibration error over {c.get("num_bins", 15)} equal-width '
            f'confidence bins, and the NLL:\n\n'
            + '\n'.join(rows))


def _va_and_calibration_sections(info: ModelCardInfo) -> str:
    """'Valence and arousal' (how to read them) and 'Calibration' (the temperature, ECE and NLL), where they apply."""
    out = ''
    if info.valence_arousal:
        out += _section('Valence and arousal', (
            'Besides the class, the model predicts valence (unpleasant -1 to pleasant 1) and arousal (calm -1 to '
            'excited 1), as AffectNet annotates them: `logits, va = model.forward_with_va(x)` (`va[:, 0]` valence, '
            '`va[:, 1]` arousal); `model(x)` returns the logits only. `FERPredictor` gives them as `face.valence` '
            'and `face.arousal`, and ONNX exports carry them as a second output.'))
    if info.calibration:
        out += _section('Calibration', _calibration_body(info.calibration))
    return out


def format_group_table(split: str, columns: Mapping[str, Any]) -> str:
    """Markdown: accuracy and mean class accuracy per group of each column (`metrics.group_metrics` results), the
    group sizes and the largest gaps; for cards and `train_scripts/validate.py --group-by`."""
    rows = [f'Accuracy per group on {split} (measured by timm-dan):', '',
            '| group | images | accuracy | mean class accuracy |', '|---|---|---|---|']
    gaps = []
    for column, result in columns.items():
        for name, entry in result['groups'].items():
            if entry['num_samples']:
                rows.append(f'| {column}: {name} | {entry["num_samples"]} | {100 * entry["accuracy"]:.2f}% | '
                            f'{100 * entry["mean_class_accuracy"]:.2f}% |')
            else:
                rows.append(f'| {column}: {name} | 0 | - | - |')
        if result.get('unknown'):
            rows.append(f'| {column}: (no value) | {result["unknown"]} | not counted | not counted |')
        gaps += [f'{column}, {metric.replace("_", " ")}: {100 * gap["value"]:.2f} points ({gap["highest"]} '
                 f'highest, {gap["lowest"]} lowest)' for metric, gap in result['largest_gap'].items()]
    if gaps:
        rows += ['', 'Largest gaps between groups: ' + '; '.join(gaps) + '. Small groups give noisy figures: read '
                 'each gap with its group sizes.']
    return '\n'.join(rows)


GROUPS_NOT_MEASURED = (
    'Accuracy per demographic group has not been measured for this model. On RAF-DB with its manual annotations, '
    '`python train_scripts/validate.py --model local-dir:DIR --dataset rafdb --data-dir RAF-DB/basic --group-by '
    'gender race age --update-card` measures it and writes the table here.')


def _bias_risks_limitations(info: ModelCardInfo) -> str:
    """The risks every FER model carries, then the accuracy per demographic group where it was measured."""
    tables = [format_group_table(split, columns) for split, columns in info.groups.items() if columns]
    return '\n\n'.join([FER_RISKS, *(tables or [GROUPS_NOT_MEASURED])])


def _replace_section(text: str, titles: Sequence[str], new: str, before: str) -> str:
    """`text` with the first `## <title>` section of `titles` replaced by `new` (a rendered section), or with `new`
    inserted before the `## <before>` section (else at the end)."""
    lines = text.splitlines(keepends=True)
    heads = [i for i, line in enumerate(lines) if line.startswith('## ')]
    for i in heads:
        if lines[i][3:].strip() in titles:
            end = next((j for j in heads if j > i), len(lines))
            return ''.join(lines[:i]) + new.lstrip('\n') + '\n' + ''.join(lines[end:])
    at = next((i for i in heads if lines[i][3:].strip() == before), None)
    if at is None:
        return text.rstrip('\n') + '\n' + new
    return ''.join(lines[:at]) + new.lstrip('\n') + '\n' + ''.join(lines[at:])


def update_card_measurements(text: str, calibration: Optional[Mapping[str, Any]] = None,
                             groups: Optional[Mapping[str, Mapping[str, Any]]] = None) -> str:
    """A rendered card (README.md text) with its 'Calibration' section and the per-group figures of its 'Bias, risks
    and limitations' section replaced by the given measurements (`train_scripts/validate.py --calibrate`,
    `--group-by`); the front matter's model-index is left as it was."""
    if calibration:
        text = _replace_section(text, ('Calibration',), _section('Calibration', _calibration_body(calibration)),
                                before='Licences')
    if groups:
        body = _bias_risks_limitations(ModelCardInfo(model_name='', datasets=[], groups=dict(groups)))
        text = _replace_section(text, ('Bias, risks and limitations', 'Limitations and risks'),
                                _section('Bias, risks and limitations', body), before='Citation')
    return text


def render_model_card(info: Union[ModelCardInfo, Mapping[str, Any]]) -> str:
    """The model card (front matter + body) as Markdown text, ready for README.md."""
    info = info if isinstance(info, ModelCardInfo) else ModelCardInfo.from_dict(info)
    body = f'\n# Model card for {info.model_name}\n'
    if set(info.datasets) & DEMO_DATASETS:
        body += f'\n{DEMO_WARNING}\n'
    if info.description:
        body += f'\n{info.description.strip()}\n'
    body += _section('Model details', _details(info))
    if info.published:
        body += _section('Published weights', _published(info))
    body += _section('How to use', _usage(info))
    if info.label_names:
        body += _section('How to use with transformers', _transformers_usage(info))
    if info.label_names:
        body += _section('Labels (in output order)', '\n'.join(
            f'{i}. `{name}`' for i, name in enumerate(info.label_names)))
    body += _section('Preprocessing', _preprocessing(info))
    if info.recipe:
        body += _section('Training', _recipe(info))
    if info.metrics:
        body += _section('Evaluation', _evaluation(info))
    body += _va_and_calibration_sections(info)
    body += _section('Licences', _licences(info))
    body += _section('Bias, risks and limitations', _bias_risks_limitations(info))
    body += _section('Citation', f'```bibtex\n{CITATION}\n```')
    return f'---\n{card_metadata(info).to_yaml()}\n---\n{body}'
