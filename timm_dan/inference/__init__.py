"""Inference on photos and videos: face detection, alignment, prediction, attention maps, ONNX export.

Names are imported on first use, so that `timm-dan --help` and `import timm_dan` do not load OpenCV or
onnxruntime.
"""
import importlib

_EXPORTS = {
    'align': ('crop_face',),
    'attention': ('annotate_image', 'attention_grid', 'save_annotated', 'save_attention_grid'),
    'detectors': ('Detection', 'DetectorUnavailable', 'HaarDetector', 'WholeImageDetector', 'YuNetDetector',
                  'create_detector'),
    'export': ('ExportReport', 'export_onnx'),
    'io': ('ImageLoadError', 'load_image'),
    'optimize': ('fold_batchnorms',),
    'predictor': ('FERPredictor',),
    'quantize': ('QuantizeReport', 'calibration_faces', 'quantize_onnx'),
    'results': ('FaceResult', 'FrameResult', 'ImageResult'),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f'{__name__}.{_MODULE_OF[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(list(globals()) + __all__)
