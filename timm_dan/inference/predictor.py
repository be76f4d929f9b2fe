"""`FERPredictor`: faces in photos and videos -> expressions, with the heads' attention maps on request."""
import copy
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

import cv2
import numpy as np
import timm
import torch
import torch.nn as nn
from PIL import Image

from ..cpu import resolve_threads, set_threads
from ..labels import LABELS
from ..models.pretrained import load_pretrained
from ..precision import check_precision, resolve_precision
from .align import crop_face
from .detectors import Detection, FaceDetector, create_detector, keep_faces
from .io import DEFAULT_MAX_PIXELS, ImageInput, ImageLoadError, describe_file, expand_inputs, load_image, sniff_format
from .optimize import fold_batchnorms
from .results import FaceResult, FrameResult, ImageResult

if TYPE_CHECKING:
    from .quantize import Calibration

__all__ = ['FERPredictor', 'RunnerOutput', 'label_names_of', 'ONNX_METADATA_KEY']

_logger = logging.getLogger(__name__)

ONNX_METADATA_KEY = 'timm_dan'
"""ONNX metadata entry (JSON) holding the label names and data config of an exported model."""

PRECISIONS = ('auto', 'fp32', 'bf16', 'int8')
"""The precisions the predictor runs in (`timm_dan.precision`'s vocabulary, and int8 through onnxruntime)."""
TORCH_PRECISIONS = ('auto', 'fp32', 'bf16')
BACKENDS = ('torch', 'onnxruntime')


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

    Input: uint8 N x H x W x 3 crops (`takes_uint8`: what `FERPredictor` hands it), copied to the device from pinned
    memory (a quarter of float32's bytes) and normalised there exactly as timm's ToTensor + Normalize would; or
    float N x C x H x W batches, normalised already. On a CUDA device (`cuda_graphs`, default there) a batch is
    padded to the next power of two and each such size's forward is captured once in a CUDA graph and replayed
    afterwards: no per-call launch overhead for batch-1 streams (video), and with `compile` one compilation per size,
    not one per new batch size.
    """
    takes_uint8 = True

    def __init__(self, model: nn.Module, device: torch.device, precision: str, reparameterize: bool,
                 channels_last: bool, compile: bool = False, cuda_graphs: Optional[bool] = None):
        model = model.eval().to(device)
        if reparameterize:
            model = timm.utils.reparameterize_model(model, inplace=True)
        self.precision = resolve_precision(precision, device, TORCH_PRECISIONS)
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
        self.mean = torch.tensor(self.data_config['mean'], dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(self.data_config['std'], dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.cuda_graphs = device.type == 'cuda' if cuda_graphs is None else cuda_graphs
        self._graphs: dict[tuple, tuple] = {}
        self._pinned: Optional[torch.Tensor] = None
        # Inductor's freezing treats the weights as constants: prepacked oneDNN weights, ReLU/add fused into convs;
        # with CUDA graphs every batch comes padded to a bucket size: static shapes, one compilation per bucket
        options = {'dynamic': False} if self.cuda_graphs else {}
        self.forward = torch.compile(self._forward, options={'freezing': True}, **options) if compile \
            else self._forward

    @torch.inference_mode()
    def __call__(self, x: np.ndarray, attention: bool) -> RunnerOutput:
        if attention and not hasattr(getattr(self.model, 'heads', None), 'spatial_maps'):
            raise ValueError(f'{type(self.model).__name__} has no DAN attention heads to return maps from')
        n = len(x)
        if self.cuda_graphs:
            try:
                outputs = self._replay(x, attention)
            except RuntimeError as e:  # a model that cannot be captured (a host sync inside, say) runs eagerly
                _logger.warning('CUDA graph capture failed, running eagerly from now on: %s', e)
                self.cuda_graphs, self._graphs = False, {}
        if not self.cuda_graphs:
            outputs = self.forward(self._model_input(self._host(x).to(self.device, non_blocking=True)), attention)
        return RunnerOutput(*(None if t is None else t[:n].float().cpu().numpy() for t in outputs))

    def _host(self, x: np.ndarray) -> torch.Tensor:
        """The batch as a host tensor; on a CUDA device in pinned memory (reused: the previous call has synced)."""
        batch = torch.from_numpy(np.ascontiguousarray(x))
        if self.device.type != 'cuda':
            return batch
        if self._pinned is None or self._pinned.dtype != batch.dtype or self._pinned.numel() < batch.numel():
            self._pinned = torch.empty(batch.numel(), dtype=batch.dtype, pin_memory=True)
        return self._pinned[:batch.numel()].view(batch.shape).copy_(batch)

    def _model_input(self, x: torch.Tensor) -> torch.Tensor:
        """A device batch as the model takes it: uint8 N x H x W x 3 normalised (as ToTensor + Normalize: / 255,
        - mean, / std, in float32), float N x C x H x W as it is; in the model's dtype and memory format."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).float().div_(255).sub_(self.mean).div_(self.std)
        return x.to(self.dtype, memory_format=memory_format)

    def _replay(self, x: np.ndarray, attention: bool) -> tuple[Optional[torch.Tensor], ...]:
        """The batch through the CUDA graph of its bucket (captured on first use): copied into the graph's static
        input, replayed, read from its static outputs."""
        n = len(x)
        key = (1 << max(n - 1, 0).bit_length(), x.shape[1:], x.dtype, attention)
        if key not in self._graphs:
            self._graphs[key] = self._capture(key)
        graph, static_input, outputs = self._graphs[key]
        static_input[:n].copy_(self._host(x), non_blocking=True)  # rows past n keep stale data: per-sample model
        graph.replay()
        return outputs

    def _capture(self, key: tuple) -> tuple:
        """Warm up (cuDNN's algorithm choice, a compilation) on a side stream, then capture one bucket's forward;
        every bucket's graph draws on one memory pool (they never run at once)."""
        bucket, shape, dtype, attention = key
        static_input = torch.zeros((bucket, *shape), dtype=torch.from_numpy(np.empty(0, dtype)).dtype,
                                   device=self.device)
        if not self._graphs:
            self._pool = torch.cuda.graph_pool_handle()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.forward(self._model_input(static_input), attention)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            outputs = self.forward(self._model_input(static_input), attention)
        return graph, static_input, outputs

    def _forward(self, x: torch.Tensor, attention: bool) -> tuple[Optional[torch.Tensor], ...]:
        """Logits, the heads' maps (with `attention`) and valence/arousal (for a model with the head), or None."""
        features = self.model.forward_features(x)
        if self.has_va:
            logits, va = self.model.forward_head_with_va(features)
        else:
            logits, va = self.model.forward_head(features), None
        return logits, self.model.heads.spatial_maps(features) if attention else None, va


class _OnnxRunner:
    """onnxruntime on a file written by `timm_dan.inference.export_onnx` or `quantize_onnx` (labels, data config,
    calibration temperature and precision in its metadata; a `valence_arousal` output for a model with a V/A head),
    on `threads` intra-op threads (default: the cores this process may use)."""

    def __init__(self, path: Union[str, os.PathLike], providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None):
        import onnxruntime as ort
        if not Path(path).is_file():
            raise FileNotFoundError(f'{path}: no such file (an ONNX model written by `timm-dan export`)')
        options = ort.SessionOptions()
        options.intra_op_num_threads = resolve_threads(threads)
        self.session = ort.InferenceSession(str(path), options,
                                            providers=list(providers or ['CPUExecutionProvider']))
        meta = self.session.get_modelmeta().custom_metadata_map
        if ONNX_METADATA_KEY not in meta:
            raise ValueError(f'{path} has no {ONNX_METADATA_KEY!r} metadata: export it with `timm-dan export`')
        info = json.loads(meta[ONNX_METADATA_KEY])
        self.precision = info.get('precision', 'fp32')
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


def _int8_runner(model: Union[str, nn.Module], calibration: Optional['Calibration'],
                 threads: Optional[int]) -> _OnnxRunner:
    """`model` exported to ONNX and quantized to int8 (calibrated on `calibration`), in onnxruntime."""
    from .export import export_onnx
    from .quantize import quantize_onnx
    if calibration is None:
        raise ValueError("precision='int8' needs calibration face crops (static quantization measures the "
                         "activations' ranges on them): pass calibration=FOLDER or a FER data set name, or run an "
                         "int8 .onnx written by `timm-dan export --quantize int8 --calibration FOLDER`")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / 'model.onnx'
        if isinstance(model, nn.Module):
            export_onnx(model, fp32, dynamic_batch=True)
        else:
            fp32 = Path(model)
        quantize_onnx(fp32, Path(tmp) / 'model.int8.onnx', calibration)
        return _OnnxRunner(str(Path(tmp) / 'model.int8.onnx'), threads=threads)  # onnxruntime holds it in memory


class FERPredictor:
    """Facial expression recognition on photos, folders and videos.

    Args:
        model: What to run: a registered model or tag with published weights ('dan_resnet18' =
            'dan_resnet18.affectnet8', 'dan_resnet18.rafdb', ...); 'hf-hub:NAMESPACE/NAME'; 'local-dir:DIR' (a Hub
            folder, e.g. the `best/` of a training run); an `nn.Module` (copied, not modified); or the path of an
            `.onnx` file written by `timm-dan export` (run with onnxruntime).
        detector: 'auto' (YuNet when available, else Haar), 'yunet', 'haar', 'none' (inputs are face crops),
            or any callable RGB image -> list of `Detection`.
        detector_model: A local YuNet `.onnx` file (for detector 'yunet' or 'auto'), instead of the Hub's.
        min_face_score: Lowest detector score of a face that is classified; default per detector
            (`detectors.MIN_FACE_SCORE`: 0.7 for YuNet, a probability; 3.0 for Haar, a cascade level weight).
        min_face_size: Smallest face classified, the shorter side of its box in input pixels (default
            `detectors.MIN_FACE_SIZE` = 24; detector 'none' keeps every input).
        device: Torch device; default CUDA when available, else CPU.
        batch_size: Faces per forward pass (all faces of a `predict` call are batched together).
        tta: Average the probabilities of each face and its mirror image.
        backend: 'torch' or 'onnxruntime'; default: onnxruntime for an `.onnx` path, else torch.
        precision: 'auto' (bf16 where the device computes it natively: CPUs with AVX-512 BF16 or AMX, GPUs with
            bf16; fp32 elsewhere), 'bf16', 'fp32', or 'int8': the model exported to ONNX and quantized
            (`quantize_onnx`, static, calibrated on `calibration`), run by onnxruntime on the CPU: the fast
            path of CPUs without native bf16. bf16 folds every BatchNorm that follows a conv or Linear
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
        calibration: For precision='int8': face crops to calibrate on (a folder of images, a FER data set name, or
            RGB arrays); an .onnx file that is int8 already needs none.
        threads: Compute threads on the CPU (default: the cores this process may use, whatever OMP_NUM_THREADS
            says; torch's setting is process-wide).
        temperature: Softmax temperature of the probabilities (`softmax(logits / T)`); None: the one the model
            was calibrated with (`model.temperature`, from its config.json or ONNX metadata), else 1. The raw
            logits stay in `face.logits`.
    """

    def __init__(
            self,
            model: Union[str, os.PathLike, nn.Module] = 'dan_resnet18',
            detector: Union[str, FaceDetector] = 'auto',
            device: Optional[Union[str, torch.device]] = None,
            batch_size: int = 32,
            tta: bool = False,
            backend: Optional[str] = None,
            precision: str = 'auto',
            reparameterize: bool = True,
            channels_last: bool = True,
            compile: bool = False,
            margin: float = 0.2,
            max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
            detector_model: Optional[Union[str, os.PathLike]] = None,
            min_face_score: Optional[float] = None,
            min_face_size: Optional[float] = None,
            calibration: Optional['Calibration'] = None,
            threads: Optional[int] = None,
            temperature: Optional[float] = None,
    ):
        check_precision(precision, PRECISIONS)
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        is_onnx = isinstance(model, (str, os.PathLike)) and str(model).lower().endswith('.onnx')
        backend = backend or ('onnxruntime' if is_onnx else 'torch')
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
        if compile and (backend != 'torch' or precision == 'int8'):
            raise ValueError("compile=True needs backend='torch' and a torch precision (not int8)")
        self.model_name = type(model).__name__ if isinstance(model, nn.Module) else str(model)
        if backend == 'torch':
            if is_onnx:
                raise ValueError(f"{model} is an ONNX file: it runs with backend='onnxruntime' (the default for "
                                 f".onnx paths)")
            device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
            if device.type == 'cpu':
                set_threads(threads)
            module = copy.deepcopy(model) if isinstance(model, nn.Module) else load_pretrained(_model_name(model))
            if precision == 'int8':
                self.runner = _int8_runner(module.eval(), calibration, threads)
            else:
                self.runner = _TorchRunner(module, device, precision, reparameterize, channels_last, compile)
        else:
            if isinstance(model, nn.Module):
                raise ValueError("backend='onnxruntime' needs the path of an exported .onnx file, not a module")
            self.runner = _OnnxRunner(model, threads=threads)
            if precision == 'int8' and self.runner.precision != 'int8':
                self.runner = _int8_runner(model, calibration, threads)
        self.backend = 'onnxruntime' if isinstance(self.runner, _OnnxRunner) else 'torch'
        self._keep: Optional[tuple[float, float]] = None  # thresholds a caller's detector gets from the predictor
        if isinstance(detector, str):
            self.detector_name = detector
            self.detector = create_detector(detector, detector_model, min_face_score, min_face_size)
        else:
            if detector_model is not None:
                raise ValueError('detector_model is for the named detectors "yunet" and "auto"')
            self.detector_name = type(detector).__name__
            self.detector = detector
            if min_face_score is not None or min_face_size is not None:
                self._keep = (min_face_score or 0., min_face_size or 0.)
        self.min_face_score = getattr(self.detector, 'min_face_score', min_face_score)
        self.min_face_size = getattr(self.detector, 'min_face_size', min_face_size)
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

    def __repr__(self) -> str:
        runner = self.runner
        device = f"device='{runner.device}', " if self.backend == 'torch' else ''
        device += f"precision='{runner.precision}', "
        detector = (f"detector='{type(self.detector).__name__}'" if self.detector_name == 'auto'
                    else f"detector='{self.detector_name}'")
        thresholds = ''.join(f', {name}={value}' for name, value in (
            ('min_face_score', self.min_face_score), ('min_face_size', self.min_face_size)) if value is not None)
        return (f"{type(self).__name__}(model='{self.model_name}', backend='{self.backend}', {device}"
                f"classes={len(self.label_names)}, input_size={tuple(self.data_config['input_size'])}, "
                f"{detector}{thresholds}, batch_size={self.batch_size}, tta={self.tta})")

    def predict(
            self,
            inputs: Union[Any, Iterable[Any]],
            color: str = 'rgb',
            attention: bool = False,
            keep_images: bool = False,
            include_hidden: bool = False,
    ) -> list[ImageResult]:
        """Predict every face of every input (paths, folders, PIL images, arrays, or a list of them).

        Args:
            inputs: What to read; folders are searched recursively for image files.
            color: Channel order of numpy inputs, 'rgb' or 'bgr' (OpenCV).
            attention: Also return each face's heads' attention maps and aligned crop.
            keep_images: Keep each input's RGB pixels in its result (e.g. to draw on them).
            include_hidden: Also read hidden files and folders (names starting with '.') inside folders.

        Returns:
            One `ImageResult` per input image, in order; unreadable inputs (missing, empty, corrupt, not an image)
            have `error` set and no faces.
        """
        return self._predict_items(expand_inputs(inputs, include_hidden), color, attention, keep_images)

    def predict_video(
            self,
            source: Union[str, int],
            every: int = 1,
            attention: bool = False,
            keep_images: bool = False,
    ) -> Iterator[FrameResult]:
        """Yield a `FrameResult` for every `every`-th frame of a video file or camera index.

        Frames are decoded, predicted and released one at a time, so memory stays flat over any length. A source
        that cannot be read (no such file, an empty file, not a video, no frame decoded) yields one result with
        `error` set, as `predict` does for an image.
        """
        if every < 1:
            raise ValueError(f'every must be >= 1, got {every}')
        camera = isinstance(source, int) or (isinstance(source, str) and source.isdigit())
        name = f'camera {source}' if camera else str(source)
        problem = None if camera else _unreadable_file(Path(source))
        capture = None if problem else (cv2.VideoCapture(int(source)) if camera else _open_video_file(str(source)))
        if capture is not None and not capture.isOpened():
            problem = 'could not open the camera' if camera else _not_a_video(Path(source))
        if problem:
            yield FrameResult(name, error=f'{name}: {problem}')
            return
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.
        index = decoded = 0
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
                decoded += 1
                seconds = index / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.
                result = self._predict_items([ImageInput(name, frame)], 'bgr', attention, keep_images)[0]
                yield FrameResult(**vars(result), frame=index, time=seconds)
                index += 1
        finally:
            capture.release()
        if not decoded:
            yield FrameResult(name, error=f'{name}: no frame could be decoded' + (
                '' if camera else f': {_not_a_video(Path(source))}'))

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
            for detection in self._detect(image):
                crops.append(self._crop(image, detection))
                owners.append((result, detection))
                if len(crops) == self.batch_size:
                    self._classify_into(crops, owners, attention)
                    crops, owners = [], []
        if crops:
            self._classify_into(crops, owners, attention)
        return results

    def _detect(self, image: np.ndarray) -> list[Detection]:
        faces = self.detector(image)
        return faces if self._keep is None else keep_faces(faces, *self._keep)

    def _classify_into(self, crops: list[np.ndarray], owners: list[tuple[ImageResult, Detection]],
                       attention: bool) -> None:
        for face, (result, _) in zip(self._classify(crops, owners, attention), owners, strict=True):
            result.faces.append(face)

    def _crop(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        margin = 0. if self.detector_name == 'none' else self.margin
        return crop_face(image, detection.box, self.crop_size, detection.landmarks, margin)

    def _runner_input(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """The crops as the runner takes them: for a runner that normalises on its device (`takes_uint8`), uint8
        N x H x W x 3 after the eval transform's resize and crop (exactly its ToTensor + Normalize follow there);
        else float N x C x H x W through the whole transform."""
        steps = _pixel_steps(self.transform, self.data_config) if getattr(self.runner, 'takes_uint8', False) else None
        if steps is None:
            return np.stack([self.transform(Image.fromarray(c)).numpy() for c in crops])
        return np.stack([np.asarray(steps(Image.fromarray(c))) for c in crops])

    def _classify(self, crops: Sequence[np.ndarray], owners: Sequence[tuple[ImageResult, Detection]],
                  attention: bool) -> list[FaceResult]:
        x = self._runner_input(crops)
        logits, maps, va = self.runner(x, attention)
        probs = _softmax(logits / self.temperature)
        if self.tta:  # the mirror image: the width axis of N x H x W x 3 pixels or N x C x H x W tensors
            mirrored = self.runner(np.ascontiguousarray(x[:, :, ::-1] if x.dtype == np.uint8 else x[..., ::-1]), False)
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


def _pixel_steps(transform: Any, data_config: dict[str, Any]) -> Optional[Any]:
    """The steps of timm's eval transform before its ToTensor, when ToTensor and a Normalize by the data config's
    mean and std are all that follow (then a runner may do those two on its device); else None."""
    from timm.data.transforms import MaybeToTensor  # (timm's ToTensor does not scale to [0, 1]: not one of these)
    from torchvision import transforms
    steps = list(getattr(transform, 'transforms', ()))
    to_tensor = [i for i, step in enumerate(steps) if isinstance(step, (MaybeToTensor, transforms.ToTensor))]
    if len(to_tensor) != 1 or len(steps) != to_tensor[0] + 2 or not isinstance(steps[-1], transforms.Normalize):
        return None
    normalize = steps[-1]
    if not (np.allclose(np.asarray(normalize.mean, dtype=np.float64), data_config['mean'])
            and np.allclose(np.asarray(normalize.std, dtype=np.float64), data_config['std'])):
        return None
    return transforms.Compose(steps[:to_tensor[0]])


def _model_name(model: Union[str, os.PathLike]) -> str:
    """A model name for `load_pretrained`; a folder given as a plain path is a mistake worth naming."""
    name = str(model)
    if not name.startswith(('hf-hub:', 'local-dir:')) and Path(name).is_dir():
        raise ValueError(f"{name} is a folder: pass 'local-dir:{name}' to load the Hub folder it holds")
    return name


def _open_video_file(path: str) -> cv2.VideoCapture:
    """A video file opened by FFmpeg, quietly: OpenCV's fallback readers print their own parse errors (raw bytes
    of the file included) where ours says what the file is."""
    backend = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(path, backend)
    finally:
        cv2.utils.logging.setLogLevel(level)


def _unreadable_file(path: Path) -> Optional[str]:
    if not path.is_file():
        return 'no such file'
    if path.stat().st_size == 0:
        return 'the file is empty (0 bytes)'
    return None


def _not_a_video(path: Path) -> str:
    """Why OpenCV could not read a file as a video, from what its first bytes say it is."""
    kind, name = sniff_format(path)
    if kind == 'image':
        return f'it is an image file ({name}), not a video: drop --video (in Python: predict)'
    if kind == 'video':
        return f'a video file ({name}) that OpenCV cannot read: truncated, or in a codec this OpenCV build lacks'
    return f'not a video OpenCV can read ({describe_file(path)})'


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
