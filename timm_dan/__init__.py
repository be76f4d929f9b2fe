"""timm-dan: DAN (Wen et al., arXiv 2109.07270) for facial expression recognition, as a timm plugin.

`import timm_dan` registers the `dan_*` models in timm.
"""
from .labels import LABELS
from .losses import AffinityLoss, CCCLoss, DANLoss, DANLossParts, PartitionLoss
from .models import DAN, HF_HUB_NAMESPACE, DANOutput, DANOutputWithVA, convert_official_checkpoint
from .version import __version__

__all__ = [
    '__version__', 'LABELS', 'HF_HUB_NAMESPACE', 'DAN', 'DANOutput', 'DANOutputWithVA', 'convert_official_checkpoint',
    'AffinityLoss', 'PartitionLoss', 'CCCLoss', 'DANLoss', 'DANLossParts', 'FERPredictor',
]


def __getattr__(name: str):
    if name == 'FERPredictor':  # lazily: the predictor needs OpenCV
        from .inference import FERPredictor
        return FERPredictor
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
