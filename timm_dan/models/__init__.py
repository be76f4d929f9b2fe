"""DAN architectures, registered in timm on import; the authors' files and the table of published weights."""
from .._deprecation import moved_names
from .dan import DAN, CrossAttentionHeads, DANOutput, DANOutputWithVA, DANPrediction, checkpoint_filter_fn
from .official import OFFICIAL_LABEL_MAPS, convert_official_checkpoint, load_backbone_weights, read_checkpoint
from .pretrained import BACKBONES, HF_HUB_NAMESPACE, PRETRAINED, PretrainedWeights, find_weights, load_pretrained

__all__ = [
    'DAN', 'DANOutput', 'DANOutputWithVA', 'DANPrediction', 'CrossAttentionHeads', 'checkpoint_filter_fn',
    'OFFICIAL_LABEL_MAPS',
    'convert_official_checkpoint', 'load_backbone_weights', 'read_checkpoint', 'HF_HUB_NAMESPACE', 'PRETRAINED',
    'BACKBONES', 'PretrainedWeights', 'find_weights', 'load_pretrained',
]

__getattr__ = moved_names(__name__, {
    'LABELS': 'timm_dan.labels:LABELS',
    'load_weights_file': 'timm_dan.models.official:read_checkpoint',
})
