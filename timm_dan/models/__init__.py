"""DAN architectures, registered in timm on import."""
from .dan import (
    DAN,
    HF_HUB_NAMESPACE,
    LABELS,
    CrossAttentionHeads,
    DANOutput,
    checkpoint_filter_fn,
    convert_official_checkpoint,
    load_backbone_weights,
    load_weights_file,
)

__all__ = [
    'DAN', 'DANOutput', 'CrossAttentionHeads', 'HF_HUB_NAMESPACE', 'LABELS', 'checkpoint_filter_fn',
    'convert_official_checkpoint', 'load_backbone_weights', 'load_weights_file',
]
