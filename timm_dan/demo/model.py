"""The demo's model: loaded by any name, or the reason it could not be and how to get it, as page text."""
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..inference.predictor import FERPredictor
from ..models.pretrained import PRETRAINED

__all__ = ['DEFAULT_MODEL', 'DEMO_RUN', 'MAX_PIXELS', 'MODEL_VARIABLE', 'SPACE_MODEL_DIR', 'DemoModel', 'ModelCache',
           'resolve_model_name', 'model_choices', 'space_model']

_logger = logging.getLogger(__name__)

MODEL_VARIABLE = 'TIMM_DAN_DEMO_MODEL'
"""The environment variable (a Space's variable) that names the model a demo starts with."""

DEFAULT_MODEL = os.environ.get(MODEL_VARIABLE, 'dan_resnet18')
"""The model a demo starts with: `$TIMM_DAN_DEMO_MODEL`, else the default pretrained weights."""

SPACE_MODEL_DIR = 'model'
"""A Space's own weights: the Hub folder of this name beside its app.py (`timm-dan hub space --model local-dir:...`)."""

DEMO_RUN = Path('runs/synthetic/best')
"""Where the README's demo training run (`train_scripts/configs/synthetic.yaml`) writes its best model."""

MAX_PIXELS = 50_000_000
"""Photos with more pixels are refused before they are decoded (a 200-megapixel phone photo, a decompression bomb)."""


def resolve_model_name(name: str) -> str:
    """A model name for `load_pretrained`: a folder path becomes `local-dir:PATH`; other names pass through."""
    name = name.strip()
    if (':' not in name and '/' in name) or Path(name).is_dir():
        return f'local-dir:{name}'
    return name


def space_model(app_dir: Path) -> str:
    """The model a Space's app shows: `$TIMM_DAN_DEMO_MODEL`, else its own Hub folder `app_dir/model`, else the
    default pretrained weights."""
    bundled = Path(app_dir) / SPACE_MODEL_DIR
    return os.environ.get(MODEL_VARIABLE) or (f'local-dir:{bundled}' if bundled.is_dir() else DEFAULT_MODEL)


def model_choices(first: str) -> list[str]:
    """The names the page offers: the demo's own model, then the published weights."""
    return list(dict.fromkeys([first, *(w.name for w in PRETRAINED)]))


@dataclass
class DemoModel:
    """A loaded predictor, or (`problem`) why the model could not be loaded and what to do, as one paragraph."""
    name: str
    predictor: Optional[FERPredictor] = None
    problem: Optional[str] = None
    attention: bool = False  # the model has DAN's attention heads

    @classmethod
    def load(cls, name: str, detector: str = 'auto', device: Optional[str] = None) -> 'DemoModel':
        from ..models.pretrained import load_pretrained
        resolved = resolve_model_name(name)
        try:
            module = load_pretrained(resolved)
            heads = getattr(module, 'heads', None)
            attention = bool(getattr(module, 'global_pool', '')) and hasattr(heads, 'spatial_maps')
            predictor = FERPredictor(module, detector=detector, device=device, max_pixels=MAX_PIXELS)
        except Exception as e:  # whatever it was, the page says it in one paragraph and the app keeps serving
            _logger.warning('Could not load model %r', resolved, exc_info=True)
            return cls(name, problem=_problem_text(resolved, e))
        return cls(name, predictor=predictor, attention=attention)


class ModelCache:
    """Models by name, each loaded once (the first request for a name loads it; the others wait for it)."""

    def __init__(self, detector: str = 'auto', device: Optional[str] = None):
        self.detector, self.device = detector, device
        self._models: dict[str, DemoModel] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> DemoModel:
        with self._lock:
            if name not in self._models:
                self._models[name] = DemoModel.load(name, self.detector, self.device)
            return self._models[name]


def _problem_text(name: str, error: Exception) -> str:
    message = ' '.join(str(error).split()).removeprefix(f'{name}: ') or type(error).__name__
    if isinstance(error, RuntimeError) and message.startswith('Unknown model'):
        message = (f'{name!r} is not a model timm knows. Use a registered name or tag (e.g. `dan_resnet18`, '
                   f'`dan_resnet18.rafdb`), `hf-hub:NAMESPACE/NAME`, `local-dir:FOLDER` or the path of a Hub folder.')
    elif not isinstance(error, (RuntimeError, FileNotFoundError, ValueError)):
        message = f'{type(error).__name__}: {message}'
    text = f'**Model `{name}` could not be loaded.** {message}'
    if name == f'local-dir:{DEMO_RUN}':
        return text
    if DEMO_RUN.is_dir():
        return f'{text} The demo run\'s model is here: start with `--model {DEMO_RUN}`.'
    return (f'{text} To try the demo without it, train the demo model in a few minutes (`accelerate launch '
            f'train_scripts/train.py`) and start with `--model {DEMO_RUN}`.')
