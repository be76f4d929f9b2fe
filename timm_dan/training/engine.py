"""The training step and the prediction loop, shared by `train_scripts/`, `timm_dan.training.loop` and `benchmarks/`.

The fast paths are chosen in one place, `timm_dan.precision.accelerate_mixed_precision` / `resolve_channels_last`:
bf16 autocast where the device supports it and channels_last memory format, unless the config turns them off
(`--precision fp32`, `--channels-last false`). The step does no host synchronisation: losses stay on the device
and are read by `TrainStep.read_losses()` at log intervals; a non-finite loss is recorded on the device and
raised by `TrainStep.check_finite()` (called before every checkpoint and every evaluation), so a corrupt state is
never saved. `skip_nonfinite=True` instead checks the synchronised gradients every step (one host sync) and skips
the optimizer step on every process at once.
"""
import hashlib
import math
from typing import Any, Optional

import torch
import torch.nn as nn
from accelerate import Accelerator
from accelerate.utils import gather_object

from ..losses import DANLoss, DANLossParts
from ..models.small_map_convs import resolve_small_map_convs, small_map_convs

__all__ = [
    'resolve_channels_last', 'DANTrainModule', 'TrainStep', 'NonFiniteLossError',
    'predict_loader', 'replica_checksums', 'LOSS_NAMES',
]

LOSS_NAMES = ('loss', 'ce', 'affinity', 'partition', 'va')
"""The losses a `TrainStep` sums and `read_losses` returns (`va`: the CCC loss, 0 without a V/A head)."""


def resolve_channels_last(channels_last: Optional[bool] = None) -> bool:
    """channels_last is on by default: faster with oneDNN on CPUs and with cuDNN on tensor-core GPUs."""
    return True if channels_last is None else channels_last


class DANTrainModule(nn.Module):
    """The model and its loss as one module: `forward(images, labels, valence_arousal=None) -> DANLossParts`.

    Preparing this one module with `accelerator.prepare` wraps model and loss in a single DDP (or FSDP) unit,
    so the affinity centres are trained and synchronised across processes like any weight, and saved with
    every checkpoint.
    """

    def __init__(self, model: nn.Module, loss_fn: DANLoss):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, images: torch.Tensor, labels: torch.Tensor,
                valence_arousal: Optional[torch.Tensor] = None) -> DANLossParts:
        return self.loss_fn(self.model.forward_train(images), labels, va_target=valence_arousal, return_parts=True)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the weights in memory are no longer trustworthy."""


class TrainStep:
    """One micro-batch of training: forward + DANLoss under autocast, backward, and (at accumulation
    boundaries) gradient clipping, optimizer step, zero_grad and the EMA update.

    Usage, after `module, optimizer = accelerator.prepare(DANTrainModule(model, loss), optimizer)`:
        step = TrainStep(accelerator, module, optimizer)
        for images, labels in loader:
            step(images, labels)      # step(images, labels, valence_arousal) with a V/A head and targets
        step.check_finite(); losses = step.read_losses()
    """

    def __init__(
            self,
            accelerator: Accelerator,
            module: nn.Module,
            optimizer: torch.optim.Optimizer,
            clip_grad: Optional[float] = None,
            ema: Optional[nn.Module] = None,
            channels_last: bool = True,
            skip_nonfinite: bool = False,
            step_seed: Optional[int] = None,
            small_map_convs: Optional[bool] = None,
    ):
        """
        Args:
            accelerator: The run's Accelerator (precision, accumulation, distribution).
            module: The prepared `DANTrainModule`.
            optimizer: The prepared optimizer.
            clip_grad: Max gradient norm (None: no clipping).
            ema: A timm `ModelEmaV3` of the unwrapped model, updated after every optimizer step.
            channels_last: Feed the images in channels_last memory format (the model must be converted too).
            skip_nonfinite: Skip an optimizer step whose synchronised gradients are not finite (one host sync
                per step) instead of stopping the run at the next check.
            step_seed: Reseed torch's RNG from (step_seed, micro-step) before each forward, so that dropout and
                stochastic depth do not depend on where a run was resumed (deterministic runs).
            small_map_convs: Compute the weight gradients of convs with small output maps as one matmul
                (`timm_dan.models.small_map_convs`; None: where that is faster, AVX2 CPUs).
        """
        self.accelerator = accelerator
        self.module = module
        self.optimizer = optimizer
        self.clip_grad = clip_grad
        self.ema = ema
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.skip_nonfinite = skip_nonfinite
        self.step_seed = step_seed
        self.small_map_convs = resolve_small_map_convs(small_map_convs, accelerator.device)
        self.micro_step = 0  # micro-batches seen, over the whole run
        self.optimizer_steps = 0
        self.skipped_steps = 0
        device = accelerator.device
        self._sums = torch.zeros(len(LOSS_NAMES), device=device, dtype=torch.float64)  # one per LOSS_NAMES
        self._count = torch.zeros((), device=device, dtype=torch.float64)
        self._first_nonfinite = torch.full((), -1, device=device, dtype=torch.int64)
        self._saved_buffers: list = []

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 valence_arousal: Optional[torch.Tensor] = None) -> DANLossParts:
        images = images.contiguous(memory_format=self.memory_format)
        if self.step_seed is not None:
            torch.manual_seed(self.step_seed * 1_000_003 + self.micro_step)
        if self.skip_nonfinite:  # a skipped step must not leave its BatchNorm statistics behind either
            self._saved_buffers = [b.clone() for b in self.module.buffers() if b.is_floating_point()]
        with self.accelerator.accumulate(self.module):
            with small_map_convs(self.small_map_convs):
                parts = self.module(images, labels) if valence_arousal is None else self.module(
                    images, labels, valence_arousal)
            self.accelerator.backward(parts.total)
            if self.accelerator.sync_gradients:
                self._optimizer_step()
        parts = DANLossParts(*(None if p is None else p.detach() for p in parts))
        finite = torch.isfinite(parts.total)
        self._first_nonfinite = torch.where(
            (self._first_nonfinite < 0) & ~finite, self.micro_step, self._first_nonfinite)
        values = [parts.total.new_zeros(()) if p is None else p for p in parts]
        self._sums += torch.where(finite, torch.stack([v.double() for v in values]), 0.0)
        self._count += finite.double()
        self.micro_step += 1
        return parts

    def _optimizer_step(self) -> None:
        if self.clip_grad is not None:
            self.accelerator.clip_grad_norm_(self.module.parameters(), self.clip_grad)
        if self.skip_nonfinite:
            grads = [p.grad for p in self.module.parameters() if p.grad is not None]
            if not torch.isfinite(torch.nn.utils.get_total_norm(grads)).item():
                self.skipped_steps += 1
                self.accelerator.print(f'Skipping optimizer step {self.optimizer_steps}: non-finite gradients '
                                       f'(micro-batch {self.micro_step})')
                self.optimizer.zero_grad(set_to_none=True)
                self._first_nonfinite.fill_(-1)
                buffers = [b for b in self.module.buffers() if b.is_floating_point()]
                torch._foreach_copy_(buffers, self._saved_buffers)
                return
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer_steps += 1
        if self.ema is not None:
            self.ema.update(self.accelerator.unwrap_model(self.module).model, step=self.optimizer_steps)

    def check_finite(self) -> None:
        """Raise `NonFiniteLossError` (on every process) if any process saw a non-finite loss (one host sync)."""
        if self.skip_nonfinite:
            return
        first = self.accelerator.reduce(self._first_nonfinite.clone(), reduction='max') if (
            self.accelerator.num_processes > 1) else self._first_nonfinite
        first = int(first.item())
        if first >= 0:
            raise NonFiniteLossError(
                f'The training loss became non-finite (NaN or inf) at micro-batch {first} of the run; stopping '
                f'without saving this state. Lower the learning rate, set clip_grad, use --precision fp32, or '
                f'pass --skip-nonfinite to skip such steps. The last good checkpoint is kept.'
            )

    def peek_loss(self) -> float:
        """This process's mean total loss since the last reset (one host sync; for progress bars)."""
        return (self._sums[0] / self._count.clamp(min=1)).item()

    def state_dict(self) -> dict[str, Any]:
        """Counters and the loss sums over all processes (one sync), for a checkpoint's JSON."""
        sums = torch.cat([self._sums, self._count[None]])
        if self.accelerator.num_processes > 1:
            sums = self.accelerator.reduce(sums.clone(), reduction='sum')
        return {'micro_step': self.micro_step, 'optimizer_steps': self.optimizer_steps,
                'skipped_steps': self.skipped_steps, 'loss_sums': sums.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.micro_step = state['micro_step']
        self.optimizer_steps = state['optimizer_steps']
        self.skipped_steps = state['skipped_steps']
        saved = list(state['loss_sums'])
        if len(saved) == len(LOSS_NAMES):  # a checkpoint from before the valence/arousal loss: it was 0
            saved.insert(len(LOSS_NAMES) - 1, 0.0)
        sums = torch.tensor(saved, dtype=torch.float64, device=self._sums.device)
        if not self.accelerator.is_main_process:  # the saved sums are totals over processes: count them once
            sums.zero_()
        self._sums.copy_(sums[:-1])
        self._count.copy_(sums[-1])

    def read_losses(self, reset: bool = True) -> dict[str, float]:
        """Mean of the losses since the last reset, over all processes (one host sync)."""
        sums = torch.cat([self._sums, self._count[None]])
        if self.accelerator.num_processes > 1:
            sums = self.accelerator.reduce(sums.clone(), reduction='sum')
        sums = sums.tolist()
        count = max(sums[-1], 1.0)
        if reset:
            self._sums.zero_()
            self._count.zero_()
        return {name: value / count for name, value in zip(LOSS_NAMES, sums[:-1], strict=True)}


def replica_checksums(accelerator: Accelerator, module: nn.Module) -> dict[str, list]:
    """SHA-256 of the affinity centres and of all weights, per process (equal when the replicas are in sync)."""

    def digest(tensors) -> str:
        h = hashlib.sha256()
        for t in tensors:
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    unwrapped = accelerator.unwrap_model(module)
    local = {'affinity_centers': digest([unwrapped.loss_fn.affinity.centers]),
             'weights': digest(unwrapped.state_dict().values())}
    if accelerator.num_processes == 1:
        return {k: [v] for k, v in local.items()}

    gathered = gather_object([local])
    return {k: [g[k] for g in gathered] for k in local}


def _forward(model: nn.Module, unwrapped: nn.Module,
             images: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Logits, and valence/arousal where the model has a V/A head (through the unwrapped module: no DDP hooks)."""
    if getattr(unwrapped, 'has_va', False):
        logits, va = unwrapped.forward_with_va(images)
        return logits.float(), va.float()
    return model(images).float(), None


@torch.no_grad()
def predict_loader(
        accelerator: Accelerator,
        model: nn.Module,
        loader,
        channels_last: bool = True,
        tta: bool = False,
) -> dict[str, torch.Tensor]:
    """Predictions over a prepared loader, gathered from all processes (every sample exactly once, in order).

    `loader` yields `(images, labels)` or `(images, labels, valence_arousal)` (targets B x 2, NaN where unknown).
    Returns `predictions` and `references` (class indices), `logits` (N x K; with `tta`, the log of the averaged
    probabilities), and for a model with a valence/arousal head `valence_arousal` (N x 2) plus, when the loader
    gives targets, `va_references`. `tta` averages the softmax (and V/A) of each image and its horizontal flip.
    """
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    gathered: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        images, labels = batch[0], batch[1]
        va_targets = batch[2] if len(batch) > 2 else None
        images = images.contiguous(memory_format=memory_format)
        with accelerator.autocast():
            logits, va = _forward(model, unwrapped, images)
            if tta:
                flipped_logits, flipped_va = _forward(model, unwrapped, images.flip(-1))
                logits = torch.logaddexp(logits.log_softmax(-1), flipped_logits.log_softmax(-1)) - math.log(2)
                va = None if va is None else (va + flipped_va) / 2
        out = {'predictions': logits.argmax(-1), 'references': labels, 'logits': logits}
        if va is not None:
            out['valence_arousal'] = va
            if va_targets is not None:
                out['va_references'] = va_targets.float()
        for key, value in accelerator.gather_for_metrics(out).items():
            gathered.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values) for key, values in gathered.items()}
