"""`FERPredictor`: faces in photos and videos -> expressions, with the heads' attention maps on request."""
import copy
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Optional, Union

import cv2
import numpy as np
import timm
import torch
import torch.nn as nn
from PIL import Image

from ..labels import LABELS
from ..models.pretrained import load_pretrained
from ..precision import check_precision, resolve_precision
from .align import crop_face
from .detectors import Detection, FaceDetector, create_detector
from .io import DEFAULT_MAX_PIXELS, ImageInput, ImageLoadError, expand_inputs, load_image
from .optimize import fold_batchnorms
from .results import FaceResult, FrameResult, ImageResult

__all__ = ['FERPredictor', 'RunnerOutput', 'label_names_of', 'ONNX_METADATA_KEY']

_logger = logging.getLogger(__name__)

ONNX_METADATA_KEY = 'timm_dan'
"""ONNX metadata entry (JSON) holding the label names and data config of an exported model."""

PRECISIONS = ('auto', 'fp32', 'bf16')
"""The precisions the predictor runs in (`timm_dan.precision`'s vocabulary)."""


class RunnerOutput(NamedTuple):
    """What a runner returns for a batch: fp32 logits (B x K), the heads' attention maps when asked for, and
    valence/arousal (B x 2) when the model predicts them."""
    logits: np.ndarray
    attention: Optional[np.ndarray] = None
    valence_arousal: Optional[np.ndarray] = None


def label_names_of(model: nn.Module) -> list[str]:
    """The model's class names: `pretrained_cfg['label_names']`, else the canonical `LABELS`."""
    num_classes = model.num_classes
    names = list(getattr(model, 'pretrained_cfg', {}).get('label_names') or ())
    if len(names) == num_classes:
        return names
    if num_classes <= len(LABELS):
        return list(LABELS[:num_classes])
    return [f'class_{i}' for i in range(num_classes)]


class _TorchRunner:
    """Eager PyTorch in inference mode: eval, branch convs folded, channels_last.

    In bf16, every BatchNorm that follows a conv or Linear layer is first folded into it (in fp32), then the whole
    model is cast to bf16: no BatchNorm passes and no per-call weight casts, as autocast would do. Outputs are fp32.
    """

    def __init__(self, model: nn.Module, device: torch.device, precision: str, reparameterize: bool,
                 channels_last: bool, compile: bool = False):
        model = model.eval().to(device)
        if reparameterize:
            model = timm.utils.reparameterize_model(model, inplace=True)
        self.precision = resolve_precision(precision, device, PRECISIONS)
        self.dtype = torch.bfloat16 if self.precision == 'bf16' else torch.float32
        self.folded_batchnorms = 0
        if self.precision == 'bf16':
            self.folded_batchnorms = fold_batchnorms(model) + _fold_va_head(model)
            model = model.to(self.dtype)
        self.channels_last = channels_last
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model, self.device = model, device
        self.has_va = getattr(model, 'has_va', False)
        self.temperature = getattr(model, 'temperature', None)
        self.label_names = label_names_of(model)
        self.data_config = timm.data.resolve_model_data_config(model)
        # Inductor's freezing treats the weights as constants: prepacked oneDNN weights, ReLU/add fused into convs
        self.forward = torch.compile(self._forward, options={'freezing': True}) if compile else self._forward

    @torch.inference_mode()
    def __call__(self, x: np.ndarray, attention: bool) -> RunnerOutput:
        if attention and not hasattr(getattr(self.model, 'heads', None), 'spatial_maps'):
            raise ValueError(f'{type(self.model).__name__} has no DAN attention heads to return maps from')
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        x = torch.from_numpy(x).to(self.device, self.dtype, memory_format=memory_format)  # one copy at most
        return RunnerOutput(*(None if t is None else t.float().cpu().numpy() for t in self.forward(x, attention)))

    def _forward(self, x: torch.Tensor, attention: bool) -> tuple[torch.Tensor, ...]:
        features = self.model.forward_features(x)
        if self.has_va:
            logits, va = self.model.forward_head_with_va(features)
        else:
            logits, va = self.model.forward_head(features), None
        return logits, self.model.heads.spatial_maps(features) if attention else None, va


class _OnnxRunner:
    """onnxruntime on a file written by `timm_dan.inference.export_onnx` (labels and data config in its metadata)."""

    def __init__(self, path: str, providers: Optional[Sequence[str]] = None):
        import onnxruntime as ort
        self.session = ort.InferenceSession(str(path), providers=list(providers or ['CPUExecutionProvider']))
        meta = self.session.get_modelmeta().custom_metadata_map
        if ONNX_METADATA_KEY not in meta:
            raise ValueError(f'{path} has no {ONNX_METADATA_KEY!r} metadata: export it with `timm-dan export`')
        info = json.loads(meta[ONNX_METADATA_KEY])
        self.label_names, self.data_config = info['label_names'], info['data_config']
        self.temperature = info.get('temperature')
        self.data_config['input_size'] = tuple(self.data_config['input_size'])
        self.input_name = self.session.get_inputs()[0].name
        batch = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.has_va = 'valence_arousal' in self.outputs

    def __call__(self, x: np.ndarray, attention: bool) -> RunnerOutput:
        if attention and 'attention' not in self.outputs:
            raise ValueError('This ONNX file has no attention output: re-export it without --no-attention')
        names = ['logits'] + (['attention'] if attention else []) + (['valence_arousal'] if self.has_va else [])
        n = len(x)
        step = self.fixed_batch or n
        chunks = []
        for start in range(0, n, step):
            chunk = x[start:start + step]
            if self.fixed_batch and len(chunk) < step:
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            chunks.append(self.session.run(names, {self.input_name: chunk}))
        out = dict(zip(names, (np.concatenate([c[i] for c in chunks])[:n] for i in range(len(names))), strict=True))
        return RunnerOutput(out['logits'], out.get('attention'), out.get('valence_arousal'))


class FERPredictor:
    """Facial expression recognition on photos, folders and videos.

    Args:
        model: A registered model or tag (pretrained weights, e.g. 'dan_resnet18' = 'dan_resnet18.affectnet8'),
            an 'hf-hub:' or 'local-dir:' name, an `nn.Module` (copied, not modified), or with
            backend='onnxruntime' the path of a file written by `timm-dan export`.
        detector: 'auto' (YuNet when available, else Haar), 'yunet', 'haar', 'none' (inputs are face crops),
            or any callable RGB image -> list of `Detection`.
        device: Torch device; default CUDA when available, else CPU.
        batch_size: Faces per forward pass (all faces of a `predict` call are batched together).
        tta: Average the probabilities of each face and its mirror image.
        backend: 'torch' or 'onnxruntime'.
        precision: 'auto' (bf16 where the device computes it natively: CPUs with AVX-512 BF16 or AMX, GPUs with
            bf16; fp32 elsewhere), 'bf16' or 'fp32'. bf16 folds every BatchNorm that follows a conv or Linear
            layer into it and casts the model to bf16 (2x the speed of fp32 on a 2-core AVX-512 BF16 CPU; top-1
            agrees with fp32 on 99.7 % of faces, probabilities move by 1e-3 on average); fp32 runs the model as
            it is.
        reparameterize: Fold each head's branch convolutions for inference (same outputs, faster).
        channels_last: Run in channels_last memory format.
        compile: `torch.compile` the model with Inductor's freezing, for long videos and large folders: the
            first batch compiles for up to a minute or more (again once for a new batch size, and for batch 1),
            later ones run a little faster than eager (1.04x at batch 32 in bf16 on a quiet 2-core AVX-512
            CPU; more under load).
        margin: Extra border around a detector box when the face has no landmarks to align on.
        max_pixels: Decompression-bomb guard for image files (None disables it).
        temperature: Softmax temperature of the probabilities (`softmax(logits / T)`); None: the one the model
            was calibrated with (`model.temperature`, from its config.json or ONNX metadata), else 1. The raw
            logits stay in `face.logits`.
    """

    def __init__(
            self,
            model: Union[str, nn.Module] = 'dan_resnet18',
            detector: Union[str, FaceDetector] = 'auto',
            device: Optional[Union[str, torch.device]] = None,
            batch_size: int = 32,
            tta: bool = False,
            backend: str = 'torch',
            precision: str = 'auto',
            reparameterize: bool = True,
            channels_last: bool = True,
            compile: bool = False,
            margin: float = 0.2,
            max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
            temperature: Optional[float] = None,
    ):
        check_precision(precision, PRECISIONS)
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        if backend == 'torch':
            device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
            module = copy.deepcopy(model) if isinstance(model, nn.Module) else load_pretrained(model)
            self.runner = _TorchRunner(module, device, precision, reparameterize, channels_last, compile)
        elif backend == 'onnxruntime':
            if isinstance(model, nn.Module):
                raise ValueError("backend='onnxruntime' needs the path of an exported .onnx file, not a module")
            if compile:
                raise ValueError("compile=True needs backend='torch'")
            self.runner = _OnnxRunner(model)
        else:
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
        self.detector_name = detector if isinstance(detector, str) else type(detector).__name__
        self.detector = create_detector(detector) if isinstance(detector, str) else detector
        self.batch_size, self.tta, self.margin, self.max_pixels = batch_size, tta, margin, max_pixels
        self.label_names = self.runner.label_names
        self.temperature = self._temperature(temperature)
        self.data_config: dict[str, Any] = self.runner.data_config
        self.transform = timm.data.create_transform(**self.data_config, is_training=False)
        _, height, width = self.data_config['input_size']
        self.crop_size = (width, height)

    def _temperature(self, temperature: Optional[float]) -> float:
        value = temperature if temperature is not None else (self.runner.temperature or 1.0)
        if not value > 0:
            raise ValueError(f'temperature must be > 0, got {value}')
        return float(value)

    @property
    def has_va(self) -> bool:
        """Whether the model predicts valence and arousal (each face then has `valence` and `arousal`)."""
        return self.runner.has_va

    def predict(
            self,
            inputs: Union[Any, Iterable[Any]],
            color: str = 'rgb',
            attention: bool = False,
            keep_images: bool = False,
    ) -> list[ImageResult]:
        """Predict every face of every input (paths, folders, PIL images, arrays, or a list of them).

        Args:
            inputs: What to read; folders are searched recursively for image files.
            color: Channel order of numpy inputs, 'rgb' or 'bgr' (OpenCV).
            attention: Also return each face's heads' attention maps and aligned crop.
            keep_images: Keep each input's RGB pixels in its result (e.g. to draw on them).

        Returns:
            One `ImageResult` per input image, in order; unreadable inputs have `error` set and no faces.
        """
        return self._predict_items(expand_inputs(inputs), color, attention, keep_images)

    def predict_video(
            self,
            source: Union[str, int],
            every: int = 1,
            attention: bool = False,
            keep_images: bool = False,
    ) -> Iterator[FrameResult]:
        """Yield a `FrameResult` for every `every`-th frame of a video file or camera index.

        Frames are decoded, predicted and released one at a time, so memory stays flat over any length.
        """
        if every < 1:
            raise ValueError(f'every must be >= 1, got {every}')
        camera = isinstance(source, int) or (isinstance(source, str) and source.isdigit())
        capture = cv2.VideoCapture(int(source) if camera else str(source))
        if not capture.isOpened():
            raise ImageLoadError(f'{source}: could not open as a video{" camera" if camera else " file"}')
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.
        name = f'camera {source}' if camera else str(source)
        index = 0
        try:
            while True:
                if index % every:
                    if not capture.grab():
                        break
                    index += 1
                    continue
                ok, frame = capture.read()
                if not ok:
                    break
                seconds = index / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.
                result = self._predict_items([ImageInput(name, frame)], 'bgr', attention, keep_images)[0]
                yield FrameResult(**vars(result), frame=index, time=seconds)
                index += 1
        finally:
            capture.release()

    def _predict_items(self, items: list[ImageInput], color: str, attention: bool,
                       keep_images: bool) -> list[ImageResult]:
        """Faces from all inputs share batches; a batch runs as soon as it is full, so that only one batch of
        crops (not every face of a large folder) is held at a time."""
        results, crops, owners = [], [], []
        for item in items:
            try:
                image = load_image(item.source, color, self.max_pixels)
            except ImageLoadError as e:
                results.append(ImageResult(item.name, error=str(e)))
                continue
            result = ImageResult(item.name, size=(image.shape[1], image.shape[0]),
                                 image=image if keep_images else None)
            results.append(result)
            for detection in self.detector(image):
                crops.append(self._crop(image, detection))
                owners.append((result, detection))
                if len(crops) == self.batch_size:
                    self._classify_into(crops, owners, attention)
                    crops, owners = [], []
        if crops:
            self._classify_into(crops, owners, attention)
        return results

    def _classify_into(self, crops: list[np.ndarray], owners: list[tuple[ImageResult, Detection]],
                       attention: bool) -> None:
        for face, (result, _) in zip(self._classify(crops, owners, attention), owners, strict=True):
            result.faces.append(face)

    def _crop(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        margin = 0. if self.detector_name == 'none' else self.margin
        return crop_face(image, detection.box, self.crop_size, detection.landmarks, margin)

    def _classify(self, crops: Sequence[np.ndarray], owners: Sequence[tuple[ImageResult, Detection]],
                  attention: bool) -> list[FaceResult]:
        x = np.stack([self.transform(Image.fromarray(c)).numpy() for c in crops])
        logits, maps, va = self.runner(x, attention)
        probs = _softmax(logits / self.temperature)
        if self.tta:
            mirrored = self.runner(np.ascontiguousarray(x[..., ::-1]), False)
            probs = (probs + _softmax(mirrored.logits / self.temperature)) / 2
            logits = (logits + mirrored.logits) / 2
            va = None if va is None else (va + mirrored.valence_arousal) / 2
        faces = []
        for i, (_, detection) in enumerate(owners):
            best = int(probs[i].argmax())
            faces.append(FaceResult(
                box=tuple(float(v) for v in detection.box),
                label=self.label_names[best],
                score=float(probs[i, best]),
                probs=dict(zip(self.label_names, probs[i].tolist(), strict=True)),
                landmarks=None if detection.landmarks is None else [tuple(map(float, p)) for p in detection.landmarks],
                detection_score=detection.score,
                attention=None if maps is None else maps[i],
                crop=crops[i] if attention else None,
                **_affect(logits[i], None if va is None else va[i], self.label_names),
            ))
        return faces


def _fold_va_head(model: nn.Module) -> int:
    """Fold a valence/arousal head's BatchNorm into its Linear layer (outside `forward`, which `fold_batchnorms`
    traces); returns the number folded (0 or 1)."""
    head = getattr(model, 'va_head', None)
    if head is None or not isinstance(head.bn, nn.BatchNorm1d):
        return 0
    head.fc = torch.nn.utils.fusion.fuse_linear_bn_eval(head.fc, head.bn)
    head.bn = nn.Identity()
    return 1


def _affect(logits: np.ndarray, va: Optional[np.ndarray], label_names: Sequence[str]) -> dict[str, Any]:
    """A face's raw logits by label, and its valence and arousal where the model predicts them."""
    out: dict[str, Any] = {'logits': dict(zip(label_names, logits.tolist(), strict=True))}
    if va is not None:
        out.update(valence=float(va[0]), arousal=float(va[1]))
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
