"""timm-dan against a straightforward DAN, side by side in one run (issue 7).

    python benchmarks/run.py [--quick] [--json OUT]                  # this machine's CPU
    bash benchmarks/gpu.sh                                            # a GPU machine: bf16, compile, batch 256
    python benchmarks/run.py --only levers [--compile] [--predictor-compile]   # what each lever contributes

Every ratio is images/s of ours over images/s of the other contender (higher is better), from medians of
interleaved runs: each round runs every contender once, in alternating order, so machine drift cancels.
The equality checks (batched heads vs the per-head loop, reparameterized vs not) run before any timing and
stop the run when they fail. `--quick` runs fewer rounds and a shorter accuracy run, never a smaller input.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # import timm_dan, benchmarks/ and tests/ from this checkout

import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from accelerate import Accelerator  # noqa: E402

import timm_dan  # noqa: E402
from tests.reference_dan import ReferenceDAN  # noqa: E402
from timm_dan import DANLossParts  # noqa: E402
from timm_dan.inference import FERPredictor, export_onnx, fold_batchnorms  # noqa: E402
from timm_dan.training import DANTrainModule, TrainStep, resolve_channels_last, resolve_precision  # noqa: E402
from timm_dan.training.config import TrainConfig  # noqa: E402
from timm_dan.training.factory import create_loss, create_model, create_optimizer  # noqa: E402

NUM_CLASSES = 7


def interleaved_medians(contenders: dict[str, Callable[[], object]], rounds: int, sync: Callable[[], None]
                        ) -> dict[str, float]:
    """Median seconds per call of each contender: one warm-up call each, then `rounds` interleaved rounds."""
    for fn in contenders.values():
        fn()
        sync()
    times = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            contenders[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def device_sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)


def step_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of `fn` (forward and backward matmuls and convolutions), counted by torch's
    `FlopCounterMode` on an eager call."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, rounds: int = 5) -> dict[str, float]:
    """GFLOP/s of a large square matmul in fp32 and bf16: what the convolutions could reach at best."""
    n = 8192 if device.type == 'cuda' else 2048
    peak = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(n, n, device=device).to(dtype)
        seconds = interleaved_medians({'mm': lambda a=a: a @ a}, rounds, device_sync(device))['mm']
        peak[str(dtype).removeprefix('torch.')] = 2 * n ** 3 / seconds / 1e9
    return peak


# ---------------------------------------------------------------------------------------------------------------
# models: the reference and ours with the same weights
# ---------------------------------------------------------------------------------------------------------------

def reference_and_ours(seed: int = 0) -> tuple[ReferenceDAN, nn.Module]:
    """A reference DAN with non-trivial BatchNorm statistics, and our `dan_resnet18` holding the same weights."""
    torch.manual_seed(seed)
    reference = ReferenceDAN(NUM_CLASSES).train()
    with torch.no_grad():
        for _ in range(3):  # fill the running statistics, as after some training
            reference(torch.randn(8, 3, 96, 96))
    ours = timm.create_model('dan_resnet18', num_classes=NUM_CLASSES)
    ours.load_state_dict(timm_dan.convert_official_checkpoint(reference.state_dict(), f'affectnet{NUM_CLASSES}'))
    return reference, ours


def max_relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def check_equal_outputs(tolerance: float = 1e-4) -> dict[str, float]:
    """Batched heads vs the per-head loop (train and eval mode, forward and gradients), reparameterized vs not."""
    reference, ours = reference_and_ours(seed=1)
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 3, 5, 6])
    loss_fn = timm_dan.DANLoss(NUM_CLASSES)
    errors = {}

    out_ref, out_ours = reference.train().forward_train(x), ours.train().forward_train(x)
    for name in ('logits', 'features', 'heads'):
        errors[f'train_{name}'] = max_relative_error(getattr(out_ours, name), getattr(out_ref, name))
    loss_fn(out_ref, target).backward()
    loss_fn(out_ours, target).backward()
    ref_grad = torch.cat([getattr(reference, f'cat_head{i}').sa.conv_3x3[0].weight.grad for i in range(4)])
    errors['grad_heads_conv3x3'] = max_relative_error(ours.heads.conv_3x3.conv.weight.grad, ref_grad)
    errors['grad_trunk_conv1'] = max_relative_error(ours.backbone.conv1.weight.grad, reference.features[0].weight.grad)

    with torch.no_grad():
        logits_ref = reference.eval()(x)
        errors['eval_logits'] = max_relative_error(ours.eval()(x), logits_ref)
        errors['reparameterized_logits'] = max_relative_error(ours.reparameterize()(x), logits_ref)
    failed = {k: v for k, v in errors.items() if not v <= tolerance}
    if failed:
        raise SystemExit(f'Equality check failed (max relative error > {tolerance}): {failed}')
    return errors


# ---------------------------------------------------------------------------------------------------------------
# training steps
# ---------------------------------------------------------------------------------------------------------------

class BackboneTrainModule(nn.Module):
    """Plain timm resnet18 + cross-entropy, returning `DANLossParts` so that the same `TrainStep` drives it."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.model = timm.create_model('resnet18', num_classes=num_classes)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> DANLossParts:
        ce = F.cross_entropy(self.model(images).float(), labels)
        zero = ce.new_zeros(())
        return DANLossParts(ce, ce, zero, zero)


def default_train_config(**overrides) -> TrainConfig:
    """train.py's defaults (RAF-DB recipe: SGD 0.1, momentum 0.9, wd 1e-4; precision/channels_last 'auto')."""
    return TrainConfig(num_classes=NUM_CLASSES, **overrides)


def train_accelerator(cfg: TrainConfig, device: str) -> Accelerator:
    """The Accelerator exactly as train.py builds it (precision resolved at run time, optional inductor)."""
    return Accelerator(mixed_precision=resolve_precision(cfg.precision), cpu=device == 'cpu',
                       dynamo_backend='inductor' if cfg.compile else None)


def prepare_train_step(accelerator: Accelerator, cfg: TrainConfig, module: nn.Module) -> TrainStep:
    """A `TrainStep` set up as train.py sets it up; `module` is a DANTrainModule (or the backbone's)."""
    channels_last = resolve_channels_last(cfg.channels_last)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    loss = module.loss_fn if isinstance(module, DANTrainModule) else nn.Module()
    optimizer = create_optimizer(cfg, module.model, loss)
    module, optimizer = accelerator.prepare(module, optimizer)
    return TrainStep(accelerator, module, optimizer, clip_grad=cfg.clip_grad, channels_last=channels_last)


def our_train_step(accelerator: Accelerator, cfg: TrainConfig, module: nn.Module, images: torch.Tensor,
                   labels: torch.Tensor) -> Callable[[], object]:
    step = prepare_train_step(accelerator, cfg, module)
    images, labels = images.to(accelerator.device), labels.to(accelerator.device)
    return lambda: step(images, labels)


def reference_train_step(images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig) -> Callable[[], object]:
    """The reference: fp32, NCHW, eager, the same DANLoss and optimizer settings."""
    device = images.device
    model = ReferenceDAN(NUM_CLASSES).to(device).train()
    loss_fn = timm_dan.DANLoss(NUM_CLASSES).to(device)
    optimizer = create_optimizer(cfg, model, loss_fn)

    def step():
        loss = loss_fn(model.forward_train(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()
    return step


def our_dan_module(cfg: TrainConfig) -> DANTrainModule:
    model = create_model(cfg)
    return DANTrainModule(model, create_loss(cfg, model))


def bench_train(args, results: dict) -> None:
    cfg = default_train_config(compile=args.compile)
    accelerator = train_accelerator(cfg, args.device)
    device = accelerator.device
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, 224, 224, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (args.batch_size,), generator=gen)
    contenders = {
        'reference': reference_train_step(images.to(device), labels.to(device), cfg),
        'ours': our_train_step(accelerator, cfg, our_dan_module(cfg), images, labels),
        'resnet18': our_train_step(accelerator, cfg, BackboneTrainModule(NUM_CLASSES), images, labels),
    }
    start = time.perf_counter()
    contenders['ours']()  # first call: oneDNN primitives, and the compilation when --compile
    results['train_first_step_s'] = time.perf_counter() - start
    seconds = interleaved_medians(contenders, args.rounds, device_sync(device))
    ips = {k: args.batch_size / v for k, v in seconds.items()}
    results['train_images_per_s'] = ips
    results['train_settings'] = {'precision': accelerator.mixed_precision,
                                 'channels_last': resolve_channels_last(cfg.channels_last), 'compile': cfg.compile}
    results['train_over_reference'] = ips['ours'] / ips['reference']
    results['train_dan_over_backbone'] = ips['ours'] / ips['resnet18']
    # achieved GFLOP/s against the matmul peak: how far each step is from what its precision allows
    # (ours computes the reference's FLOPs; counted on the eager reference, which --compile leaves alone)
    flops = {'reference': step_flops(contenders['reference'])}
    flops['ours'] = flops['reference']
    if not cfg.compile:
        flops['resnet18'] = step_flops(contenders['resnet18'])
    results['train_gflop_per_s'] = {k: flops[k] / seconds[k] / 1e9 for k in flops}
    results['matmul_peak_gflop_per_s'] = matmul_peak(device)


# ---------------------------------------------------------------------------------------------------------------
# heads: batched (ours) vs the per-head loop (reference), forward + backward, fp32
# ---------------------------------------------------------------------------------------------------------------

def bench_heads(args, results: dict) -> None:
    reference, ours = reference_and_ours()
    device = torch.device(args.device)
    heads_ours = ours.heads.to(device).train()
    reference = reference.to(device).train()
    features = torch.randn(args.batch_size, 512, 7, 7, device=device, requires_grad=True)

    def run_ours():
        heads_ours(features).sum().backward()

    def run_loop():
        reference.forward_heads(features).sum().backward()
    seconds = interleaved_medians({'loop': run_loop, 'ours': run_ours}, args.rounds * 2, device_sync(device))
    results['heads_images_per_s'] = {k: args.batch_size / v for k, v in seconds.items()}
    flops = step_flops(run_loop)  # the same convolutions and matmuls in both
    results['heads_gflop_per_s'] = {k: flops / v / 1e9 for k, v in seconds.items()}
    results['heads_over_loop'] = seconds['loop'] / seconds['ours']


# ---------------------------------------------------------------------------------------------------------------
# inference: FERPredictor's model call (its default backend) vs the reference in eval mode
# ---------------------------------------------------------------------------------------------------------------

def bench_infer(args, results: dict) -> None:
    reference, ours = reference_and_ours()
    device = torch.device(args.device)
    reference = reference.to(device).eval()
    predictor = FERPredictor(ours, detector='none', device=device, **args.predictor_kwargs)
    runner = predictor.runner
    if args.predictor_compile:
        start = time.perf_counter()
        runner(torch.randn(args.batch_size, 3, 224, 224).numpy(), False)
        results['infer_compile_s'] = time.perf_counter() - start
    results['infer_settings'] = {'backend': type(runner).__name__, 'precision': getattr(runner, 'precision', None),
                                 'channels_last': getattr(runner, 'channels_last', None),
                                 'compile': args.predictor_compile}
    for batch_size, key in ((args.batch_size, 'infer_over_reference'), (1, 'infer_over_reference_bs1')):
        rounds = args.rounds * (2 if batch_size > 1 else 8)
        seconds = infer_medians(reference, runner, batch_size, device, rounds)
        results[f'infer_images_per_s_bs{batch_size}'] = {k: batch_size / v for k, v in seconds.items()}
        results[key] = seconds['reference'] / seconds['ours']
        if batch_size > 1:  # the reference's FLOPs (ours computes the same function, reparameterized: fewer)
            x = torch.randn(batch_size, 3, 224, 224, device=device)
            flops = step_flops(torch.no_grad()(lambda x=x: reference(x)))
            results['infer_gflop_per_s'] = {k: flops / v / 1e9 for k, v in seconds.items()}


def infer_medians(reference: nn.Module, runner: Callable, batch_size: int, device: torch.device, rounds: int
                  ) -> dict[str, float]:
    """Both start from the same host batch and return host logits (on a GPU both pay the host-to-device copy)."""
    x = torch.randn(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    x_np = x.numpy()

    @torch.no_grad()
    def run_reference():
        return reference(x.to(device)).cpu()
    return interleaved_medians({'reference': run_reference, 'ours': lambda: runner(x_np, False)}, rounds,
                               device_sync(device))


# ---------------------------------------------------------------------------------------------------------------
# data: our loader -> transforms -> batches vs ImageFolder + PIL
# ---------------------------------------------------------------------------------------------------------------

def bench_data(args, results: dict) -> None:
    """Images/s from JPEG files to what the model takes, on `--device`: the baseline's float batches moved there,
    ours normalised there by DeviceNormalize (timed with the loader); ours also from the opt-in decoded cache,
    whose one-off build (`decode_to_arrow`, one process) is reported apart as `data_cache_build_s`."""
    from benchmarks.data_pipeline import baseline_loader, drain, our_loader, tree_dataset, write_jpeg_tree
    from timm_dan.data import decode_to_arrow

    device = torch.device(args.device)
    pin = device.type == 'cuda'

    def to_device(batch):
        return tuple(t.to(device, non_blocking=pin) for t in batch)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_tree(Path(tmp) / 'faces', args.data_images)
        on_disk = tree_dataset(root, save_to=Path(tmp) / 'arrow')
        start = time.perf_counter()
        cached = decode_to_arrow(on_disk)
        results['data_cache_build_s'] = time.perf_counter() - start
        loaders = {'baseline': (baseline_loader(root, 224, args.batch_size, args.data_workers, pin), to_device),
                   'ours': our_loader(tree_dataset(root), 224, args.batch_size, args.data_workers, device),
                   'ours (decoded cache)': our_loader(cached, 224, args.batch_size, args.data_workers, device)}
        counts = {}

        def epoch(name):
            counts[name] = drain(*loaders[name])
        seconds = interleaved_medians({name: (lambda n=name: epoch(n)) for name in loaders}, args.data_rounds,
                                      device_sync(device))
    ips = {k: counts[k] / v for k, v in seconds.items()}
    results['data_images_per_s'] = ips
    results['data_workers'] = args.data_workers
    results['data_over_baseline'] = ips['ours'] / ips['baseline']
    results['data_cached_over_baseline'] = ips['ours (decoded cache)'] / ips['baseline']


def bench_loop(args, results: dict) -> None:
    """Our default train step fed by our loader (JPEG tree, BatchCollate, workers, DeviceNormalize) vs one
    in-memory batch."""
    from benchmarks.data_pipeline import our_loader, tree_dataset, write_jpeg_tree

    cfg = default_train_config(compile=args.compile)
    accelerator = train_accelerator(cfg, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_tree(Path(tmp) / 'faces', args.batch_size * args.loop_batches)
        device = accelerator.device
        loader, normalize = our_loader(tree_dataset(root), 224, args.batch_size, args.data_workers, device)
        step = prepare_train_step(accelerator, cfg, our_dan_module(cfg))
        images, labels = normalize(next(iter(loader)))

        def with_loader():
            for batch_images, batch_labels in map(normalize, loader):
                step(batch_images, batch_labels)

        def in_memory():
            for _ in range(len(loader)):
                step(images, labels)
        seconds = interleaved_medians({'data included': with_loader, 'data excluded': in_memory},
                                      max(2, args.rounds // 2), device_sync(device))
    images_per_epoch = len(loader) * args.batch_size
    results['loop_images_per_s'] = {k: images_per_epoch / v for k, v in seconds.items()}


# ---------------------------------------------------------------------------------------------------------------
# bf16 accuracy: train.py on the synthetic faces, default precision vs fp32, same seed
# ---------------------------------------------------------------------------------------------------------------

def bench_accuracy(args, results: dict) -> None:
    """train.py's synthetic demo recipe (8 classes, 64x64), as shipped (10 epochs of 4000 images, >= 90 %);
    `--quick` shortens it to 2 epochs of 1200 images, a smoke run that stays near chance (12.5 %)."""
    accuracy = {}
    quick = ['--dataset-options', json.dumps({'num_samples': 1200, 'num_validation_samples': 600, 'image_size': 64,
                                              'num_classes': 8, 'seed': 0}), '--epochs', '2'] if args.quick else []
    for precision in ('auto', 'fp32'):
        with tempfile.TemporaryDirectory() as tmp:
            command = [
                sys.executable, str(ROOT / 'train_scripts' / 'train.py'),
                '--config', str(ROOT / 'train_scripts' / 'configs' / 'synthetic.yaml'), *quick,
                '--precision', precision, '--output-dir', tmp, '--num-workers', '0',
            ]
            env = dict(os.environ, HF_HOME=str(Path(tmp) / 'hf'), HF_HUB_OFFLINE='1',
                       PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
            done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f'train.py --precision {precision} failed:\n{done.stderr[-3000:]}')
            summary = json.loads((Path(tmp) / 'results.json').read_text())
            accuracy[precision] = 100 * summary['validation']['accuracy']
    if accuracy['fp32'] < 25:
        print(f'warning: the fp32 run reached {accuracy["fp32"]:.1f} % (chance 12.5 %): too short to compare '
              f'precisions; run without --quick', file=sys.stderr)
    results['accuracy_percent'] = accuracy
    results['bf16_accuracy_delta'] = accuracy['auto'] - accuracy['fp32']


# ---------------------------------------------------------------------------------------------------------------
# peak RSS of a training step, each in a fresh process
# ---------------------------------------------------------------------------------------------------------------

def rss_child(kind: str, batch_size: int) -> None:
    """Runs in a fresh interpreter: three training steps of `kind`, then prints the peak RSS in MiB."""
    cfg = default_train_config()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, 224, 224, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), generator=gen)
    if kind == 'reference':
        step = reference_train_step(images, labels, cfg)
    else:
        step = our_train_step(train_accelerator(cfg, 'cpu'), cfg, our_dan_module(cfg), images, labels)
    for _ in range(3):
        step()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec
    peak_kib = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:'))
    print(peak_kib / 1024)


def bench_rss(args, results: dict) -> None:
    peak = {}
    for kind in ('reference', 'ours'):
        out = subprocess.run([sys.executable, __file__, '--rss-child', kind, '--batch-size', str(args.batch_size)],
                             check=True, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE='1'))
        peak[kind] = float(out.stdout.strip().splitlines()[-1])
    results['peak_rss_mib'] = peak
    results['peak_rss_ours_over_reference'] = peak['ours'] / peak['reference']


# ---------------------------------------------------------------------------------------------------------------
# levers: what each setting contributes, ours switched on one at a time (plain torch.autocast, no Accelerate)
# ---------------------------------------------------------------------------------------------------------------

def plain_train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, channels_last: bool,
                     bf16: bool, compile_model: bool = False) -> Callable[[], object]:
    """One training step of `model` (ours or the reference) with DANLoss and train.py's SGD settings."""
    loss_fn = timm_dan.DANLoss(NUM_CLASSES)
    optimizer = create_optimizer(default_train_config(), model, loss_fn)
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model.forward_train) if compile_model else model.forward_train

    def step():
        with torch.autocast(images.device.type, torch.bfloat16, enabled=bf16):
            loss = loss_fn(forward(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def bench_levers(args, results: dict) -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, 224, 224, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (args.batch_size,), generator=gen)
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


# ---------------------------------------------------------------------------------------------------------------

SECTIONS = ('train', 'heads', 'infer', 'data', 'accuracy', 'rss', 'loop', 'levers')
TABLE = (
    # key, what, target
    ('train_over_reference', 'train step, train.py defaults / reference', '>= 2.5'),
    ('infer_over_reference', 'FERPredictor model call / reference eval, batch N', '>= 3.0'),
    ('infer_over_reference_bs1', 'the same at batch 1', ''),
    ('train_dan_over_backbone', 'our DAN train step / timm resnet18 + CE, same settings', '>= 0.85'),
    ('heads_over_loop', 'heads fwd+bwd, batched / per-head loop, fp32', '>= 1.5'),
    ('data_over_baseline', 'our loader / ImageFolder + PIL, same workers', '>= 2.0'),
    ('data_cached_over_baseline', 'the same from the opt-in decoded cache (--cache-decoded)', ''),
    ('bf16_accuracy_delta', 'val. accuracy, default precision - fp32 (points)', '>= -0.5'),
    ('peak_rss_ours_over_reference', 'peak RSS of a train step, ours / reference', '<= 1.0'),
)


def machine() -> str:
    if torch.cuda.is_available():
        return f'{torch.cuda.get_device_name()} ({os.cpu_count()} CPU cores)'
    cpu = platform.processor() or 'cpu'
    try:
        cpu = next(line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads'


def print_table(results: dict) -> None:
    print(f'\n{"key":30s} {"value":>8s}  {"target":8s}  what')
    for key, what, target in TABLE:
        value = results.get(key)
        shown = '-' if value is None else f'{value:8.2f}'
        print(f'{key:30s} {shown:>8s}  {target:8s}  {what}')
    for key, value in results.items():  # the images/s (and other figures) behind the ratios
        if isinstance(value, dict) and all(isinstance(v, float) for v in value.values()):
            print(f'  {key}: ' + ', '.join(f'{k} {v:.4g}' for k, v in value.items()))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='fewer rounds and a shorter accuracy run')
    parser.add_argument('--json', type=Path, help='write the results here')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--rounds', type=int, help='interleaved rounds per contender (default 5, quick 3)')
    parser.add_argument('--compile', action='store_true', help="torch.compile our train step (train.py's --compile)")
    parser.add_argument('--predictor-compile', action='store_true',
                        help="torch.compile the predictor's model (Inductor freezing)")
    parser.add_argument('--predictor-precision', choices=('auto', 'fp32', 'bf16'),
                        help="FERPredictor's precision (default: its own default)")
    parser.add_argument('--data-workers', type=int, default=1)
    parser.add_argument('--data-images', type=int, default=None, help='images in the JPEG tree (default 512)')
    parser.add_argument('--loop-batches', type=int, default=8, help='batches per epoch of the loop section')
    parser.add_argument('--only', nargs='+', choices=SECTIONS,
                        help='run these sections (the equality check always runs)')
    parser.add_argument('--rss-child', choices=('reference', 'ours'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.data_rounds = 3
    args.data_images = args.data_images or (256 if args.quick else 512)
    args.predictor_kwargs = {'precision': args.predictor_precision} if args.predictor_precision else {}
    if args.predictor_compile:
        args.predictor_kwargs['compile'] = True
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child, args.batch_size)
        return 0
    sections = ['check', *(args.only or SECTIONS[:-2])]  # loop and levers only when asked for
    results = {'date': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'machine': machine(),
               'command': ' '.join([Path(sys.executable).name, *sys.argv]), 'torch': torch.__version__,
               'batch_size': args.batch_size, 'rounds': args.rounds}
    benches = {'check': lambda a, r: r.update(equality_max_relative_error=check_equal_outputs()),
               'train': bench_train, 'heads': bench_heads, 'infer': bench_infer, 'data': bench_data,
               'accuracy': bench_accuracy, 'rss': bench_rss, 'loop': bench_loop,
               'levers': bench_levers}
    failed = []
    for name in sections:
        start = time.perf_counter()
        before = set(results)
        try:
            benches[name](args, results)
        except Exception as e:  # a failed section must not cost the others (one-shot runs on a lent GPU)
            if name == 'check':
                raise
            traceback.print_exc()
            failed.append(name)
            results[f'{name}_error'] = f'{type(e).__name__}: {e}'
        added = {k: v for k, v in results.items() if k not in before}
        print(f'[{name}: {time.perf_counter() - start:.0f} s] {json.dumps(added)}', file=sys.stderr, flush=True)
        if args.json:  # after every section, so that a run stopped half-way keeps what it measured
            args.json.write_text(json.dumps(results, indent=1))
    print_table(results)
    if failed:
        print(f'failed sections: {", ".join(failed)}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
