"""`timm-dan predict`: photos, folders and videos."""
import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, TextIO

DETECTORS = ('auto', 'yunet', 'haar', 'none')  # = detectors.DETECTORS; `timm-dan --help` does not import OpenCV


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        'predict', help='Detect faces and predict their expressions in images, folders or videos',
        description='Detect faces and predict their expressions. Exit status 0 when every input was read '
                    '(with or without faces), 1 when some could not be read (each is reported, the rest are '
                    'processed), 2 when the model or detector could not be set up.',
    )
    predict.add_argument('paths', nargs='+', metavar='PATH', help='image files, folders, or (with --video) '
                                                                   'video files or camera indices')
    predict.add_argument('--model', default='dan_resnet18', help='registered name/tag (pretrained), hf-hub:, '
                                                                  'local-dir:, or an exported .onnx file')
    predict.add_argument('--detector', default='auto', choices=DETECTORS)
    out = predict.add_mutually_exclusive_group()
    out.add_argument('--json', metavar='OUT', help='write the results as JSON (a list, one object per input)')
    out.add_argument('--csv', metavar='OUT', help='write the results as CSV (one row per face)')
    predict.add_argument('--annotate', metavar='DIR', help='save images with boxes, landmarks and labels here')
    predict.add_argument('--attention', metavar='DIR', help="save each face's attention maps (PNG grid) here")
    predict.add_argument('--video', action='store_true', help='PATHs are videos or camera indices')
    predict.add_argument('--every', type=int, default=1, help='with --video: predict every N-th frame')
    predict.add_argument('--tta', action='store_true', help='average each face with its mirror image')
    predict.add_argument('--batch-size', type=int, default=32)
    predict.add_argument('--device', default=None)
    predict.add_argument('--precision', default='auto', choices=('auto', 'fp32', 'bf16'),
                         help='auto: bf16 where the device computes it natively (BatchNorms folded, weights in '
                              'bf16), else fp32; fp32 runs the model unchanged')
    predict.add_argument('--compile', action='store_true',
                         help='torch.compile the model (Inductor freezing): a minute or more to start, then faster; '
                              'for long videos and large folders')
    predict.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..inference import FERPredictor, save_annotated, save_attention_grid
    from ..inference.io import expand_inputs
    try:
        backend = 'onnxruntime' if str(args.model).endswith('.onnx') else 'torch'
        predictor = FERPredictor(args.model, detector=args.detector, device=args.device, batch_size=args.batch_size,
                                 tta=args.tta, backend=backend, precision=args.precision,
                                 compile=args.compile)
    except Exception as e:
        print(f'error: could not set up the predictor: {e}', file=sys.stderr)
        return 2
    attention, keep = args.attention is not None, args.annotate is not None
    names = _UniqueNames(per_file=args.video)
    writer = _ResultWriter(args.json, args.csv, predictor.label_names, video=args.video, va=predictor.has_va)
    failures = 0
    print(f'{"file":<32} {"face":>4}  {"label":<9} {"score":>5}  ' + ('valence arousal  ' if predictor.has_va else '')
          + 'top-3')
    with writer:
        if args.video:
            results = _video_results(predictor, args.paths, args.every, attention, keep)
            progress = None
        else:
            items = expand_inputs(args.paths)
            progress = tqdm(total=len(items), unit='image', disable=None, file=sys.stderr)
            results = _image_results(predictor, items, attention, keep, progress)
        for result in results:
            _print_rows(result)
            writer.write(result)
            if result.error:
                failures += 1
                print(f'error: {result.error}', file=sys.stderr)
                continue
            stem = names(result.file) + (f'_frame{result.frame:06d}' if args.video else '')
            if keep:
                save_annotated(result, Path(args.annotate) / f'{stem}.png')
            for i, face in enumerate(result.faces if attention else ()):
                save_attention_grid(face, Path(args.attention) / f'{stem}_face{i}.png')
        if progress is not None:
            progress.close()
    if failures:
        print(f'{failures} input(s) could not be read', file=sys.stderr)
    return 1 if failures else 0


def _image_results(predictor, items, attention: bool, keep: bool, progress) -> Iterator[Any]:
    """Predict files in chunks of `batch_size` images, so that many files never sit in memory at once."""
    step = predictor.batch_size
    for start in range(0, len(items), step):
        chunk = items[start:start + step]
        yield from predictor.predict([item.source for item in chunk], attention=attention, keep_images=keep)
        progress.update(len(chunk))


def _video_results(predictor, sources, every: int, attention: bool, keep: bool) -> Iterator[Any]:
    from ..inference.io import ImageLoadError
    from ..inference.results import FrameResult
    for source in sources:
        try:
            yield from predictor.predict_video(source, every=every, attention=attention, keep_images=keep)
        except ImageLoadError as e:
            yield FrameResult(str(source), error=str(e))


def _print_rows(result) -> None:
    where = result.file + (f' @{result.time:.2f}s' if hasattr(result, 'time') and not result.error else '')
    if result.error:
        print(f'{where:<32} ERROR')
        return
    if not result.faces:
        print(f'{where:<32} {"-":>4}  no face')
    for i, face in enumerate(result.faces):
        top = ', '.join(f'{name} {p:.2f}' for name, p in face.top(3))
        va = f'{face.valence:+7.2f} {face.arousal:+7.2f}  ' if face.valence is not None else ''
        print(f'{where:<32} {i:>4}  {face.label:<9} {face.score:5.2f}  {va}{top}')


class _UniqueNames:
    """File stem of each input for output files; repeats get a counter (a/x.jpg, b/x.jpg -> x, x_1).

    With `per_file` (videos), all results of one file share its name.
    """

    def __init__(self, per_file: bool = False):
        self.seen, self.per_file, self.named = {}, per_file, {}

    def __call__(self, file: str) -> str:
        if self.per_file and file in self.named:
            return self.named[file]
        stem = Path(file).stem if not file.startswith('<') else file.strip('<>').replace(' ', '_')
        count = self.seen.get(stem, 0)
        self.seen[stem] = count + 1
        self.named[file] = stem if not count else f'{stem}_{count}'
        return self.named[file]


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

    def __enter__(self) -> '_ResultWriter':
        path = self.json_path or self.csv_path
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, 'w', newline='' if self.csv_path else None, encoding='utf-8')
        if self.json_path:
            self.file.write('[')
        elif self.csv_path:
            self.csv = csv.writer(self.file)
            frame_cols = ['frame', 'time'] if self.video else []
            self.csv.writerow(['file', *frame_cols, 'face', 'x', 'y', 'w', 'h', 'label', 'score',
                               *self.label_names, *self.va_cols, 'error'])
        return self

    def write(self, result) -> None:
        if self.file is None:
            return
        if self.json_path:
            self.file.write(('\n' if self.first else ',\n') + json.dumps(result.to_dict()))
            self.first = False
            return
        frame_cols = [result.frame, round(result.time, 4)] if self.video else []
        if result.error or not result.faces:
            self.csv.writerow([result.file, *frame_cols] + [''] * (7 + len(self.label_names) + len(self.va_cols))
                              + [result.error or ''])
        for i, face in enumerate(result.faces):
            probs = [round(face.probs[n], 6) for n in self.label_names]
            box = [round(v, 2) for v in face.box]
            va = [round(face.valence, 6), round(face.arousal, 6)] if self.va_cols else []
            self.csv.writerow([result.file, *frame_cols, i, *box, face.label, round(face.score, 6), *probs, *va, ''])

    def __exit__(self, *exc) -> None:
        if self.file is None:
            return
        if self.json_path:
            self.file.write('\n]\n')
        self.file.close()
