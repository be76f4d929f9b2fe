"""`timm-dan predict`: photos, folders and videos."""
import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, TextIO

DETECTORS = ('auto', 'yunet', 'haar', 'none')  # = detectors.DETECTORS; `timm-dan --help` does not import OpenCV
NAME_WIDTH = 48
"""Widest file column of the table; longer names keep their end (the file name) behind '...'."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be 1 or more, got {value}')
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f'must be 0 or more, got {text}')
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        'predict', help='Detect faces and predict their expressions in images, folders or videos',
        description='Detect faces and predict their expressions. Exit status 0 when every input was read '
                    '(with or without faces), 1 when some could not be read (each is reported, the rest are '
                    'processed), 2 when the model, detector or output folders could not be set up.',
    )
    predict.add_argument('paths', nargs='+', metavar='PATH', help='image files, folders, or (with --video) '
                                                                   'video files or camera indices')
    predict.add_argument('--model', default='dan_resnet18',
                         help='registered name/tag with published weights (dan_resnet18 = dan_resnet18.affectnet8, '
                              'dan_resnet18.rafdb, ...), hf-hub:NAMESPACE/NAME, local-dir:DIR (e.g. a training '
                              "run's best/), or an .onnx file written by timm-dan export")
    predict.add_argument('--detector', default='auto', choices=DETECTORS,
                         help='auto: YuNet when its file is cached or downloads, else Haar; none: inputs are faces')
    predict.add_argument('--detector-model', metavar='PATH',
                         help='a local YuNet .onnx file (face_detection_yunet_2023mar.onnx) for --detector yunet or '
                              'auto, instead of the Hub download')
    predict.add_argument('--min-face-score', type=float, metavar='S',
                         help="lowest detector score classified (default: YuNet 0.7, a probability; Haar 3.0, the "
                              "cascade's level weight)")
    predict.add_argument('--min-face-size', type=_non_negative, metavar='PX',
                         help='smallest face classified: shorter side of its box in pixels (default 24)')
    out = predict.add_mutually_exclusive_group()
    out.add_argument('--json', metavar='OUT', help='write the results as JSON (a list, one object per input)')
    out.add_argument('--csv', metavar='OUT', help='write the results as CSV (one row per face)')
    predict.add_argument('--annotate', metavar='DIR', help='save images with boxes, landmarks and labels here')
    predict.add_argument('--attention', metavar='DIR', help="save each face's attention maps (PNG grid) here")
    predict.add_argument('--include-hidden', action='store_true',
                         help="also read hidden files and folders (names starting with '.') inside folders")
    predict.add_argument('--video', action='store_true', help='PATHs are videos or camera indices')
    predict.add_argument('--every', type=_positive_int, metavar='N',
                         help='with --video: predict every N-th frame (default 1)')
    predict.add_argument('--tta', action='store_true', help='average each face with its mirror image')
    predict.add_argument('--batch-size', type=_positive_int, default=32)
    predict.add_argument('--device', default=None)
    predict.add_argument('--precision', default='auto', choices=('auto', 'fp32', 'bf16', 'int8'),
                         help='auto: bf16 where the device computes it natively (BatchNorms folded, weights in '
                              'bf16), else fp32; fp32 runs the model unchanged; int8: the model quantized for '
                              'onnxruntime on the CPU (calibrated on --calibration), the fast path of CPUs without '
                              'bf16')
    predict.add_argument('--calibration', metavar='DIR', default=None,
                         help='with --precision int8: face crops to calibrate on, a folder of images or a FER data '
                              'set name (synthetic); an int8 .onnx from timm-dan export --quantize int8 needs none')
    predict.add_argument('--threads', type=_positive_int, default=None, metavar='N',
                         help='compute threads (default: the cores this process may use, whatever '
                              'OMP_NUM_THREADS says)')
    predict.add_argument('--compile', action='store_true',
                         help='torch.compile the model (Inductor freezing): a minute or more to start, then faster; '
                              'for long videos and large folders')
    predict.set_defaults(func=run_predict, parser=predict)


def run_predict(args: argparse.Namespace) -> int:
    if args.every is not None and not args.video:
        args.parser.error('--every applies to videos: add --video')
    if args.detector_model is not None and args.detector not in ('yunet', 'auto'):
        args.parser.error(f'--detector-model is a YuNet .onnx file: use it with --detector yunet or auto, '
                          f'not {args.detector}')
    if args.calibration is not None and args.precision != 'int8':
        args.parser.error('--calibration is for --precision int8')
    if args.precision == 'int8' and args.calibration is None and not args.model.lower().endswith('.onnx'):
        args.parser.error('--precision int8 needs --calibration DIR, face crops to measure the activations on '
                          '(or an int8 .onnx from timm-dan export --quantize int8 as --model)')
    if args.video:  # OpenCV's FFmpeg backend logs its own errors; each unreadable input is reported below
        os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', '-8')
    try:
        outputs = [Path(p) for p in (args.annotate, args.attention) if p]
        outputs += [Path(p).parent for p in (args.json, args.csv) if p]
        for folder in outputs:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f'error: cannot create the output folder {e.filename}: {e.strerror}', file=sys.stderr)
        return 2

    from tqdm import tqdm

    from ..inference import FERPredictor, save_annotated, save_attention_grid
    from ..inference.detectors import DetectorUnavailable
    from ..inference.io import expand_inputs
    try:
        predictor = FERPredictor(args.model, detector=args.detector, device=args.device, batch_size=args.batch_size,
                                 tta=args.tta, precision=args.precision, compile=args.compile,
                                 detector_model=args.detector_model, min_face_score=args.min_face_score,
                                 min_face_size=args.min_face_size, calibration=args.calibration,
                                 threads=args.threads)
    except Exception as e:
        message = e.for_cli() if isinstance(e, DetectorUnavailable) else str(e)
        print(f'error: could not set up the predictor: {message}', file=sys.stderr)
        return 2
    attention, keep = args.attention is not None, args.annotate is not None
    writer = _ResultWriter(args.json, args.csv, predictor.label_names, video=args.video, va=predictor.has_va)
    names = _OutputNames()
    if args.video:
        sources = [(str(p), 'camera' + p if p.isdigit() else Path(p).name) for p in args.paths]
        table = _Table([f'{"camera " + s if s.isdigit() else s} @00000.00s' for s, _ in sources], predictor.has_va)
        results = _video_results(predictor, sources, args.every or 1, attention, keep)
        progress = None
    else:
        items = expand_inputs(args.paths, include_hidden=args.include_hidden)
        table = _Table([item.name for item in items], predictor.has_va)
        progress = tqdm(total=len(items), unit='image', disable=None, file=sys.stderr)
        results = _image_results(predictor, items, attention, keep, progress)
    failures = 0
    try:
        writer.open()
    except OSError as e:
        print(f'error: cannot write {e.filename}: {e.strerror}', file=sys.stderr)
        return 2
    table.header()
    with writer:
        for result, relative in results:
            record = result.to_dict()
            if result.error:
                failures += 1
            else:
                stem = names(relative + (f'.frame{result.frame:06d}' if args.video else ''))
                if keep:  # sources in subfolders keep them: the writers create the folders
                    record['annotated'] = str(save_annotated(result, Path(args.annotate) / f'{stem}.png'))
                for i, face in enumerate(result.faces if attention else ()):
                    path = save_attention_grid(face, Path(args.attention) / f'{stem}.face{i}.png')
                    record['faces'][i]['attention'] = str(path)
            table.rows(result)
            writer.write(result, record)
            if result.error:
                print(f'error: {result.error}', file=sys.stderr)
        if progress is not None:
            progress.close()
    if failures:
        print(f'{failures} input(s) could not be read', file=sys.stderr)
    return 1 if failures else 0


def _image_results(predictor, items, attention: bool, keep: bool, progress) -> Iterator[tuple[Any, str]]:
    """Predict files in chunks of `batch_size` images, so that many files never sit in memory at once; each
    result comes with its input's path relative to the folder it was found in (for naming outputs)."""
    step = predictor.batch_size
    for start in range(0, len(items), step):
        chunk = items[start:start + step]
        results = predictor.predict([item.source for item in chunk], attention=attention, keep_images=keep,
                                    include_hidden=True)  # files already chosen by expand_inputs
        yield from zip(results, (item.relative for item in chunk), strict=True)
        progress.update(len(chunk))


def _video_results(predictor, sources, every: int, attention: bool, keep: bool) -> Iterator[tuple[Any, str]]:
    for source, relative in sources:
        for frame in predictor.predict_video(source, every=every, attention=attention, keep_images=keep):
            yield frame, relative


class _Table:
    """The printed table: one row per face; the file column as wide as the longest name (up to `NAME_WIDTH`);
    valence and arousal columns for a model with a V/A head."""

    def __init__(self, names: list[str], va: bool = False):
        self.width = min(max([len(n) for n in names] + [4]), NAME_WIDTH)
        self.va = va

    def header(self) -> None:
        print(f'{"file":<{self.width}} {"face":>4}  {"label":<9} {"score":>5}  {"det":>5}  '
              + ('valence arousal  ' if self.va else '') + 'top-3')

    def _name(self, text: str) -> str:
        return text if len(text) <= self.width else '...' + text[len(text) - self.width + 3:]

    def rows(self, result) -> None:
        where = self._name(result.file + (f' @{result.time:.2f}s' if hasattr(result, 'time') and not result.error
                                          else ''))
        if result.error:
            print(f'{where:<{self.width}} ERROR')
            return
        if not result.faces:
            print(f'{where:<{self.width}} {"-":>4}  no face')
        for i, face in enumerate(result.faces):
            top = ', '.join(f'{name} {p:.2f}' for name, p in face.top(3))
            va = f'{face.valence:+7.2f} {face.arousal:+7.2f}  ' if face.valence is not None else ''
            print(f'{where:<{self.width}} {i:>4}  {face.label:<9} {face.score:5.2f}  {face.detection_score:5.2f}  '
                  f'{va}{top}')


class _OutputNames:
    """Output file stems: the input's path relative to its folder, extension kept (`sub/a.bmp` -> `sub/a.bmp`, so
    the picture is `sub/a.bmp.png`); a stem met again gets a counter (`a.bmp.2`)."""

    def __init__(self):
        self.seen: dict[str, int] = {}

    def __call__(self, relative: str) -> str:
        count = self.seen.get(relative, 0) + 1
        self.seen[relative] = count
        return relative if count == 1 else f'{relative}.{count}'


class _ResultWriter:
    """Streams results to JSON (a list, one object per input or frame) or CSV (one row per face)."""

    def __init__(self, json_path: Optional[str], csv_path: Optional[str], label_names, video: bool,
                 va: bool = False):
        self.json_path, self.csv_path = json_path, csv_path
        self.label_names = list(label_names)
        self.video = video
        self.va_cols = ['valence', 'arousal'] if va else []
        self.file: Optional[TextIO] = None
        self.first = True

    def open(self) -> None:
        path = self.json_path or self.csv_path
        if path:
            self.file = open(path, 'w', newline='' if self.csv_path else None, encoding='utf-8')
        if self.json_path:
            self.file.write('[')
        elif self.csv_path:
            self.csv = csv.writer(self.file)
            frame_cols = ['frame', 'time'] if self.video else []
            self.csv.writerow(['file', *frame_cols, 'face', 'x', 'y', 'w', 'h', 'detection_score', 'label', 'score',
                               *self.label_names, *self.va_cols, 'annotated', 'attention', 'error'])

    def __enter__(self) -> '_ResultWriter':
        return self

    def write(self, result, record: dict[str, Any]) -> None:
        """One result; `record` is its `to_dict()` with the paths of the pictures written for it."""
        if self.file is None:
            return
        if self.json_path:
            self.file.write(('\n' if self.first else ',\n') + json.dumps(record))
            self.first = False
            return
        frame_cols = [result.frame, round(result.time, 4)] if self.video else []
        annotated = record.get('annotated', '')
        if result.error or not result.faces:
            self.csv.writerow([result.file, *frame_cols] + [''] * (8 + len(self.label_names) + len(self.va_cols))
                              + [annotated, '', result.error or ''])
        for i, (face, face_record) in enumerate(zip(result.faces, record['faces'], strict=True)):
            probs = [round(face.probs[n], 6) for n in self.label_names]
            box = [round(v, 2) for v in face.box]
            va = [round(face.valence, 6), round(face.arousal, 6)] if self.va_cols else []
            self.csv.writerow([result.file, *frame_cols, i, *box, face_record['detection_score'], face.label,
                               round(face.score, 6), *probs, *va, annotated, face_record.get('attention', ''), ''])

    def __exit__(self, *exc) -> None:
        if self.file is None:
            return
        if self.json_path:
            self.file.write('\n]\n')
        self.file.close()
