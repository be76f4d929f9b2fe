"""The web demo as a Hugging Face Space: a folder that the Gradio SDK runs as it is, and its upload.

The folder holds the demo's app (`space_app.py` as app.py), README.md whose front matter configures the Space
(the Gradio SDK at the version installed here, app.py, the model's Hub repo), requirements.txt (timm-dan's own
dependencies at the versions installed here; torch from PyTorch's CPU index, for the free CPU hardware, unless
`gpu=True`), a copy of the `timm_dan` package (the Space imports it from there: timm-dan need not be on an index),
and, for a model given as `local-dir:FOLDER`, that Hub folder as `model/`. Any other model (a registered name or
tag, `hf-hub:NAMESPACE/NAME`) becomes the Space variable `TIMM_DAN_DEMO_MODEL`, set by `push_space`.

    from timm_dan.demo.space import push_space, write_space_folder
    write_space_folder('space', model='local-dir:runs/synthetic/best')
    push_space('space', 'me/timm-dan-demo')
"""
import importlib.metadata
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any, Optional, Union

from huggingface_hub import SpaceCardData
from packaging.requirements import Requirement
from packaging.version import Version

from ..hub.folder import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, _replace_dir, validate_model_folder
from ..hub.publish import upload_token
from ..version import __version__
from .model import DEFAULT_MODEL, MODEL_VARIABLE, SPACE_MODEL_DIR, model_choices, resolve_model_name

__all__ = ['write_space_folder', 'push_space', 'space_requirements', 'SPACE_FILES']

SPACE_FILES = ('app.py', CARD_NAME, 'requirements.txt', 'timm_dan')
"""What every Space folder holds (and `model/` when it carries its own weights)."""

TORCH_CPU_INDEX = 'https://download.pytorch.org/whl/cpu'
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def space_requirements(gpu: bool = False) -> str:
    """requirements.txt of a Space: timm-dan's dependencies pinned to the versions installed here (gradio comes with
    the SDK); CPU builds of torch unless `gpu`."""
    try:
        requires = importlib.metadata.requires('timm-dan') or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError('timm-dan is not installed (its dependencies come from its metadata): '
                           'pip install -e ".[demo]" in the checkout') from None
    lines = ['# timm-dan\'s dependencies at the versions this Space was written with; timm_dan/ is beside app.py']
    if not gpu:
        lines.append(f'--extra-index-url {TORCH_CPU_INDEX}  # CPU builds of torch and torchvision (no CUDA download)')
    for requirement in map(Requirement, requires):
        if requirement.marker is not None and 'extra' in str(requirement.marker):
            continue
        # the public version: a local build label (2.14.1+cpu) exists on one index only
        pinned = f'{requirement.name}=={Version(importlib.metadata.version(requirement.name)).public}'
        lines.append(f'{pinned}; {requirement.marker}' if requirement.marker else pinned)
    return '\n'.join(lines) + '\n'


def _hub_repo(model: str) -> str:
    """The Hub repo of the weights a (non-local) model name loads; a name without published weights is refused."""
    import timm
    if model.startswith('hf-hub:'):
        return model.removeprefix('hf-hub:')
    cfg = timm.models.get_pretrained_cfg(model)
    if cfg is None or not cfg.hf_hub_id:
        raise ValueError(f'{model!r} names no published weights for the demo to show: give hf-hub:NAMESPACE/NAME, '
                         f'local-dir:FOLDER (a Hub folder, e.g. runs/synthetic/best), or one of '
                         f'{", ".join(model_choices(DEFAULT_MODEL))}')
    return cfg.hf_hub_id


def _space_card(model: str, bundled: bool) -> str:
    import gradio
    repo = None if bundled else _hub_repo(model)
    data = SpaceCardData(
        title='timm-dan: facial expressions', sdk='gradio', sdk_version=gradio.__version__,
        python_version=f'{sys.version_info.major}.{sys.version_info.minor}', app_file='app.py', license='mit',
        models=[repo] if repo else None, tags=['facial-expression-recognition', 'timm', 'dan'],
        emoji='🙂', colorFrom='indigo', colorTo='pink', pinned=False,
        short_description='Facial expressions with DAN (timm): photos, webcam, video',
    )
    where = (f'its own weights in `{SPACE_MODEL_DIR}/`' if bundled else
             f'`{model}` (the Space variable `{MODEL_VARIABLE}` chooses another)')
    body = '\n'.join([
        '# timm-dan: facial expression recognition', '',
        'DAN ("Distract Your Attention: Multi-head Cross Attention Network for Facial Expression Recognition", '
        'Wen et al., [arXiv 2109.07270](https://arxiv.org/abs/2109.07270)) as a timm model. Upload photos, stream '
        'the webcam or analyse a video: each face is boxed with its expression, the probabilities, and where each '
        'attention head looks.', '',
        f'The model: {where}.', '',
        f'Written by `timm-dan hub space` (timm-dan {__version__}).', '',
    ])
    return f'---\n{data.to_yaml()}\n---\n\n{body}'


def write_space_folder(
        output_dir: Union[str, Path],
        model: Optional[str] = None,
        *,
        gpu: bool = False,
        overwrite: bool = False,
) -> Path:
    """Write a Space folder for the demo on `model` (default: the demo's default model). A `local-dir:` model (or
    a folder path) is checked (loaded, one forward pass) and copied in as `model/`; a name must have published
    weights (a ValueError lists the names that do). Written under a temporary name
    and renamed into place, like the Hub folders: a failure leaves the previous folder as it was."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f'{output_dir} exists; pass overwrite=True (--overwrite) to replace it')
    model = resolve_model_name(model or DEFAULT_MODEL)
    source = Path(model.removeprefix('local-dir:')) if model.startswith('local-dir:') else None  # bundled weights
    if source is not None:
        validate_model_folder(source)
    else:
        _hub_repo(model)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f'.{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}')
    try:
        shutil.copytree(PACKAGE_DIR, tmp / 'timm_dan', ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        shutil.copyfile(Path(__file__).with_name('space_app.py'), tmp / 'app.py')
        (tmp / 'requirements.txt').write_text(space_requirements(gpu), encoding='utf-8')
        (tmp / CARD_NAME).write_text(_space_card(model, source is not None), encoding='utf-8')
        if source is not None:
            (tmp / SPACE_MODEL_DIR).mkdir()
            for name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
                shutil.copyfile(source / name, tmp / SPACE_MODEL_DIR / name)
        _replace_dir(tmp, output_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def push_space(
        folder: Union[str, Path],
        repo_id: str,
        *,
        model: Optional[str] = None,
        private: bool = False,
        dry_run: bool = False,
        token: Optional[str] = None,
) -> dict[str, Any]:
    """Upload a folder of `write_space_folder` as the Gradio Space `repo_id` (created if needed) in one commit, and
    set the Space variable `TIMM_DAN_DEMO_MODEL` to `model` when given. With `dry_run` nothing is uploaded.

    Returns:
        {'repo_id', 'url' (the Space's page), 'files' ({path: bytes}), 'variables'} and, after an upload,
        'commit_url'.
    """
    folder = Path(folder)
    missing = [name for name in SPACE_FILES if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f'{folder} is not a Space folder: missing {", ".join(missing)} (write one with '
                                f'`timm-dan hub space --output-dir {folder}`)')
    files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob('*'))
             if p.is_file() and '__pycache__' not in p.parts}
    summary = {'repo_id': repo_id, 'url': f'https://huggingface.co/spaces/{repo_id}', 'files': files,
               'variables': {MODEL_VARIABLE: model} if model else {}}
    if dry_run:
        return summary
    from huggingface_hub import HfApi
    api = HfApi(token=upload_token(repo_id, token))
    api.create_repo(repo_id, repo_type='space', space_sdk='gradio', private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, repo_type='space', folder_path=str(folder),
                               ignore_patterns=['**/__pycache__/**'],
                               commit_message=f'timm-dan {__version__} demo (timm-dan hub space)')
    for key, value in summary['variables'].items():
        api.add_space_variable(repo_id, key, value, description='the model the demo starts with')
    summary['commit_url'] = commit.commit_url
    return summary
