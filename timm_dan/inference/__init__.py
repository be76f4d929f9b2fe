"""Inference on photos and videos: face detection, alignment, prediction, attention maps, ONNX export.

Needs OpenCV (and onnxruntime for the ONNX backend/export); `import timm_dan` alone does not import them.
"""
from .align import crop_face
from .attention import annotate_image, attention_grid, save_annotated, save_attention_grid
from .detectors import Detection, HaarDetector, WholeImageDetector, YuNetDetector, create_detector
from .export import ExportReport, export_onnx
from .io import ImageLoadError, load_image
from .predictor import FERPredictor
from .results import FaceResult, FrameResult, ImageResult

__all__ = [
    'FERPredictor', 'FaceResult', 'ImageResult', 'FrameResult', 'Detection', 'create_detector', 'HaarDetector',
    'YuNetDetector', 'WholeImageDetector', 'crop_face', 'load_image', 'ImageLoadError', 'attention_grid',
    'save_attention_grid', 'annotate_image', 'save_annotated', 'export_onnx', 'ExportReport',
]
