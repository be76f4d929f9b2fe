"""What each setting contributes: ours with the levers switched on one at a time (plain `torch.autocast`, no
Accelerate), in training and in the predictor's model call, beside the reference."""
import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch

from benchmarks.contenders import NUM_CLASSES, plain_train_step, random_batch, reference_and_ours
from benchmarks.harness import interleaved_medians
from benchmarks.sections.infer import lfw_faces
from tests.reference_dan import ReferenceDAN
from timm_dan.inference import FERPredictor, export_onnx, fold_batchnorms


def autocast_runner(runner: Callable) -> Callable:
    """The predictor's bf16 before BatchNorm folding: an fp32 model under `torch.autocast` (weights cast per call)."""
    def run(x, attention):
        with torch.autocast(runner.device.type, torch.bfloat16):
            return runner(x, attention)
    return run


def folded_fp32_runner(predictor: FERPredictor) -> Callable:
    """The fp32 predictor with its BatchNorms folded (what precision='bf16' does before the cast to bf16)."""
    runner = predictor.runner
    fold_batchnorms(runner.model)
    runner.model.to(memory_format=torch.channels_last)
    return runner


def run(args: argparse.Namespace, results: dict) -> None:
    gen = torch.Generator().manual_seed(0)
    images, labels = random_batch(args.batch_size, gen)
    train = {'reference fp32 NCHW': plain_train_step(ReferenceDAN(NUM_CLASSES), images, labels, False, False)}
    for name, channels_last, bf16 in (('batched heads fp32 NCHW', False, False), ('+ channels_last', True, False),
                                      ('batched heads bf16 NCHW', False, True), ('+ channels_last bf16', True, True)):
        train[name] = plain_train_step(timm.create_model('dan_resnet18', num_classes=NUM_CLASSES), images, labels,
                                       channels_last, bf16)
    if args.compile:
        train['+ torch.compile'] = plain_train_step(
            timm.create_model('dan_resnet18', num_classes=NUM_CLASSES), images, labels, True, True, True)
        start = time.perf_counter()
        train['+ torch.compile']()
        results['levers_train_compile_s'] = time.perf_counter() - start
    seconds = interleaved_medians(train, args.rounds, lambda: None)
    results['levers_train_images_per_s'] = {k: args.batch_size / v for k, v in seconds.items()}

    reference, ours = reference_and_ours()
    reference.eval()
    runners = {}
    for name, kwargs in (('fp32 NCHW', dict(reparameterize=False, channels_last=False)),
                         ('+ reparameterize', dict(channels_last=False)), ('+ channels_last (precision=fp32)', {})):
        runners[name] = FERPredictor(ours, detector='none', precision='fp32', **kwargs).runner
    runners['+ bf16 autocast (the previous bf16)'] = autocast_runner(
        FERPredictor(ours, detector='none', precision='fp32').runner)
    runners['+ BatchNorms folded, fp32'] = folded_fp32_runner(FERPredictor(ours, detector='none', precision='fp32'))
    runners['+ folded, bf16 model (precision=bf16)'] = FERPredictor(ours, detector='none', precision='bf16').runner
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(ours, Path(tmp) / 'dan.onnx', dynamic_batch=True, attention=False)
        runners['onnxruntime fp32'] = FERPredictor(str(Path(tmp) / 'dan.onnx'), detector='none',
                                                   backend='onnxruntime').runner
    runners['int8, onnxruntime QDQ (precision=int8)'] = FERPredictor(ours, detector='none', precision='int8',
                                                                     calibration=lfw_faces()).runner
    if args.predictor_compile:
        runners['+ compile=True (Inductor freezing)'] = FERPredictor(ours, detector='none', precision='bf16',
                                                                     compile=True).runner
    for batch_size in (args.batch_size, 1):
        x = torch.randn(batch_size, 3, 224, 224, generator=gen)
        x_np = x.numpy()
        contenders = {'reference fp32 NCHW': torch.no_grad()(lambda x=x: reference(x))}
        contenders.update({name: (lambda r=runner, x_np=x_np: r(x_np, False)) for name, runner in runners.items()})
        seconds = interleaved_medians(contenders, args.rounds * (1 if batch_size > 1 else 4), lambda: None)
        results[f'levers_infer_images_per_s_bs{batch_size}'] = {k: batch_size / v for k, v in seconds.items()}
