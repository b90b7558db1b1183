"""The course's ``Trainer`` (exercise part 4) with its errata fixed, plus resumable checkpoints,
mixed precision, EMA and DistributedDataParallel.

What changed from the printed course code:

- ``best_mae`` is updated, so ``best_model.pth`` really is the best epoch (erratum 3); it stays a
  plain state_dict of the whole diffusion model (EMA weights when EMA is on), loadable by the
  course's ``model.load_state_dict(torch.load(path, weights_only=True), strict=True)``;
- validation restores only the first ``val_batches`` batches of the validation loader with a
  fixed random seed and a step budget (DDIM, 20 steps by default), not the whole set, so its MAE is
  comparable across epochs; the model is in ``eval()`` mode there (dropout off) and uses the
  ``"test"`` noise schedule, then goes back to ``train()`` and the ``"train"`` schedule;
- ``model.train()`` during training; no unused variables; checkpoints are read with
  ``weights_only=True`` (erratum 12).

Randomness: ``seed`` (default 0) seeds python, numpy and torch when the Trainer is built (rank r
of a distributed run uses ``seed + r``). Resuming restores every random state, the train loader's
shuffling included, so k steps + resume + (N - k) steps gives bit-identical weights on the CPU.
The loader is replayed to the saved position of the epoch (with ``num_workers=0`` only the indices
are replayed, no images are loaded).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .checkpoints import (
    CHECKPOINT_FORMAT,
    all_finite,
    atomic_save,
    atomic_write_text,
    capture_rng_state,
    read_checkpoint,
    restore_rng_state,
    seed_everything,
)
from .distributed import DistInfo, all_reduce_mean, cleanup_distributed, setup_distributed
from .ema import ema_decay_at, make_ema, update_ema
from .losses import mae, masked_mae, mse_loss

LAST_CHECKPOINT = "last.ckpt"
BEST_MODEL = "best_model.pth"
HISTORY_FILE = "history.json"
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
AMP_MODES = ("auto", "fp16", "bf16")
VAL_SEED_OFFSET = 12345  # validation draws use seed + this, apart from the training stream


def resolve_amp(amp: str | bool | None, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or None for full float32.

    ``"auto"`` (or True): on CUDA bfloat16 if the GPU supports it natively (Ampere and newer), else
    float16 (T4, with a GradScaler); on a CPU, off. False/None: off. ``"fp16"``/``"bf16"``: forced,
    CUDA only.

    :raises ValueError: an unknown mode, or ``"fp16"``/``"bf16"`` on a non-CUDA device (mixed
        precision is a CUDA feature here; use ``amp="auto"`` or False on a CPU).
    """
    device = torch.device(device)
    if amp is None or amp is False:
        return None
    mode = "auto" if amp is True else amp
    if mode not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES} or False, got {amp!r}")
    if device.type != "cuda":
        if mode == "auto":
            return None
        raise ValueError(f"amp={mode!r} needs a CUDA device, but training runs on {device}; use amp='auto' or False")
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def _batch_to(batch: Mapping[str, Any], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    try:
        tensors = [batch[k] for k in ("gt_image", "cond_image", "mask")]
    except (KeyError, TypeError):
        raise ValueError(
            "a training batch must be a dict with 'gt_image', 'cond_image' and 'mask' (the course's "
            "InpaintingDataset / OfflineFaces items)"
        ) from None
    return tuple(t.to(device, non_blocking=True) for t in tensors)  # type: ignore[return-value]


def _optimisation_step(
    model: nn.Module,
    batch: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
    amp_dtype: torch.dtype | None = None,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> float:
    """:func:`training_step`, with ``reduce`` turning the local loss into the logged one (the mean
    over processes under DDP, so a NaN on any process stops all of them together)."""
    gt_image, cond_image, mask = _batch_to(batch, device)
    optimizer.zero_grad(set_to_none=True)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    with autocast:
        loss = model(gt_image, cond_image, mask=mask)
    logged = loss.detach().float()
    if reduce is not None:
        logged = reduce(logged)
    value = float(logged.item())
    if not math.isfinite(value):
        raise FloatingPointError(f"the training loss is {value} (not finite); no optimiser step was taken")
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    if grad_clip is not None:
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if scaler is not None:
        scaler.step(optimizer)  # skipped by the scaler when the gradients hold inf/NaN
        scaler.update()
    else:
        optimizer.step()
    return value


def training_step(
    model: nn.Module,
    batch: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    device: torch.device | str,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
    amp_dtype: torch.dtype | None = None,
) -> float:
    """ONE optimisation step on one batch (the course's inner training loop).

    Moves ``gt_image``, ``cond_image`` and ``mask`` to ``device``, ``optimizer.zero_grad()``,
    ``loss = model(gt_image, cond_image, mask=mask)`` (under ``torch.autocast`` when ``amp_dtype``
    is given), ``loss.backward()`` (scaled by ``scaler`` when given), clips the gradient norm to
    ``grad_clip`` (after unscaling), ``optimizer.step()``.

    :param model: an ``InpaintingGaussianDiffusion`` (or its DDP wrapper) in train mode.
    :param batch: a dict from the course's dataset, batched by a DataLoader.
    :return: ``loss.item()``.
    :raises FloatingPointError: the loss is NaN or infinite (raised before any step is taken).
    """
    return _optimisation_step(model, batch, optimizer, torch.device(device), scaler, grad_clip, amp_dtype)


def summary_line(epoch: int, seconds: float, train_loss: float, val_loss: float, val_mae: float) -> str:
    """The course's end-of-epoch line, e.g.
    ``| End of epoch   1 | Time:  1.23s | Train Loss    0.123 | Valid Loss    0.456 | Valid MAE    0.078 ``."""
    return (
        f"| End of epoch {epoch:3d} | Time: {seconds:5.2f}s | Train Loss {train_loss:8.3f} "
        f"| Valid Loss {val_loss:8.3f} | Valid MAE {val_mae:8.3f} "
    )


def _empty_history() -> dict:
    return {
        "epoch": [], "train_loss": [], "val_loss": [], "val_mae": [], "val_mae_hole": [],
        "best_mae_history": [], "epoch_time": [], "epoch_end_step": [], "step": [], "step_loss": [],
        "best_mae": math.inf, "best_epoch": 0,
    }


@contextlib.contextmanager
def _isolated_rng(seed: int, generator: torch.Generator | None = None) -> Iterator[None]:
    """Run a block with every RNG seeded to ``seed``, then put all states back as they were."""
    saved = capture_rng_state(generator)
    seed_everything(seed)
    if generator is not None:
        generator.manual_seed(seed)
    try:
        yield
    finally:
        restore_rng_state(saved, generator)


def _skip_batches(iterator: Any, count: int, loader: Any) -> None:
    """Advance a fresh DataLoader iterator by ``count`` batches (indices only when no workers)."""
    sampler_iter = getattr(iterator, "_sampler_iter", None)
    if getattr(loader, "num_workers", 1) == 0 and sampler_iter is not None:
        for _ in range(count):
            next(sampler_iter)
    else:
        for _ in range(count):
            next(iterator)


def _jsonable(obj: Any) -> Any:
    """Plain JSON data (tuples -> lists, inf -> None), also safe for ``torch.load(weights_only=True)``."""
    def fix(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, Mapping):
            return {str(k): fix(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [fix(v) for v in x]
        return x

    return fix(json.loads(json.dumps(obj, default=str)))


class Trainer:
    """Train an ``InpaintingGaussianDiffusion`` (course signature; extras by keyword).

    :param model: the diffusion model; moved to ``device``.
    :param optimizers: optimiser keyword arguments, the course's ``{"lr": 5e-5, "weight_decay": 0}``.
    :param train_loader: DataLoader of course dicts (shuffled). Under torchrun give it a
        ``DistributedSampler`` (:func:`train_from_profile` does); the Trainer calls its ``set_epoch``.
    :param val_loader: DataLoader of validation dicts, NOT shuffled: its first ``val_batches``
        batches are the fixed validation subset.
    :param epochs: number of epochs; ``sample_num``: trajectory frames kept by validation restorations.
    :param device: ``"cuda"``, ``"cpu"``, a ``torch.device``; under torchrun each process uses
        ``cuda:LOCAL_RANK``.
    :param save_model: output folder (created): ``last.ckpt``, ``best_model.pth``, ``history.json``.
    :param optimizer: ``"adam"`` (the course) or ``"adamw"``.
    :param ema_decay: EMA decay (None: no EMA); validation, ``best_model.pth`` and sampling use it.
    :param ema_warmup: grow the EMA decay as ``min(decay, (1 + n) / (10 + n))`` (see :mod:`ddpm_lab.ema`).
    :param amp: ``"auto"`` / ``"fp16"`` / ``"bf16"`` / False, see :func:`resolve_amp` (CPU: off).
    :param grad_clip: max gradient norm (None: no clipping).
    :param checkpoint_every: also write ``last.ckpt`` every this many steps (always at epoch ends).
    :param val_batches: validation batches per epoch; ``val_sampler``: ``"ddim"``/``"ddpm"``/
        ``"repaint"``; ``val_steps``: DDIM steps (default min(20, test schedule length)).
    :param resume: a checkpoint path, or True for ``save_model/last.ckpt`` (started fresh, with a
        message, when that file does not exist yet); None/False: start fresh.
    :param max_steps: stop after this many optimiser steps in total (a checkpoint is written).
    :param seed: seeds every RNG at construction (None: leave them alone).
    :param progress: tqdm progress bars (rank 0 only); ``log``: where messages go (rank 0 only).
    :param init: ``"kaiming"`` (or another :func:`ddpm_lab.nn.init_weights` type) re-initialises a
        freshly built :class:`~ddpm_lab.unet.UNet` as Palette does (its zero-initialised output would
        otherwise make it output 0); skipped when resuming, for other networks (the SimpleUnet keeps
        PyTorch's default init, as in the course) and for a UNet whose output layer is not all
        zeros any more (trained weights are never wiped). None: never.
    :param loss_fn: training loss ``f(target, prediction)`` (None: the course's ``mse_loss``).

    Under ``torchrun --nproc_per_node=N`` the Trainer joins the process group (NCCL on CUDA, gloo on
    the CPU), wraps the model in DistributedDataParallel, averages the logged loss over processes,
    and only rank 0 writes files, logs and shows bars; every rank validates the same subset with the
    same (identical) EMA weights, so no rank waits for another. Call
    :func:`ddpm_lab.distributed.cleanup_distributed` when done (:func:`train_from_profile` does).
    Exact resume needs the same loaders as before (same data, batch size, ``num_workers``; no
    ``persistent_workers``) and one process; a distributed resume restores weights, optimiser and
    counters exactly but re-seeds the random streams of ranks other than 0.
    """

    def __init__(
        self, model: nn.Module, optimizers: Mapping[str, Any], train_loader: Any, val_loader: Any, epochs: int,
        sample_num: int, device: torch.device | str, save_model: str | os.PathLike, *,
        optimizer: str = "adam", ema_decay: float | None = 0.999, amp: str | bool | None = "auto",
        grad_clip: float | None = 1.0, checkpoint_every: int | None = None, val_batches: int = 1,
        val_sampler: str = "ddim", val_steps: int | None = None, resume: str | os.PathLike | bool | None = None,
        max_steps: int | None = None, seed: int | None = 0, progress: bool = True,
        log: Callable[[str], Any] = print, init: str | None = "kaiming",
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None, ema_warmup: bool = True,
    ) -> None:
        from .samplers import SAMPLERS

        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
        if val_sampler not in SAMPLERS:
            raise ValueError(f"val_sampler must be one of {SAMPLERS}, got {val_sampler!r}")
        for name, value in (("epochs", epochs), ("sample_num", sample_num), ("val_batches", val_batches)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, value in (("checkpoint_every", checkpoint_every), ("max_steps", max_steps), ("val_steps", val_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if ema_decay is not None and not 0.0 <= ema_decay <= 1.0:
            raise ValueError(f"ema_decay must be in [0, 1] or None, got {ema_decay}")
        if val_loader is None:
            raise ValueError("a val_loader is needed: validation picks best_model.pth")
        if not hasattr(model, "set_new_noise_schedule") or not hasattr(model, "restoration"):
            raise ValueError("model must be an InpaintingGaussianDiffusion (it needs set_new_noise_schedule and restoration)")

        self.dist: DistInfo = setup_distributed(device)
        self.device = self.dist.device
        self.amp_dtype = resolve_amp(amp, self.device)
        self.log = log if self.dist.is_main else (lambda *_: None)
        self.progress = bool(progress) and self.dist.is_main
        self.save_model = Path(save_model)
        if self.dist.is_main:
            self.save_model.mkdir(parents=True, exist_ok=True)
        self.train_loader, self.val_loader = train_loader, val_loader
        self.epochs, self.sample_num, self.max_steps = epochs, sample_num, max_steps
        self.optimizer_name, self.optimizer_kwargs = optimizer, dict(optimizers)
        self.ema_decay, self.ema_warmup, self.amp = ema_decay, ema_warmup, amp
        self.grad_clip, self.checkpoint_every = grad_clip, checkpoint_every
        self.val_batches, self.val_sampler, self.val_steps = val_batches, val_sampler, val_steps
        self.seed = seed
        self._val_seed = (seed or 0) + VAL_SEED_OFFSET

        if seed is not None:
            seed_everything(seed + self.dist.rank)
        resume_path = self._resume_path(resume)
        self.model = model
        if init is not None and resume_path is None:
            self._init_network(init)
        self.model.to(self.device)
        self.model.set_loss(loss_fn if loss_fn is not None else mse_loss)
        self.model.set_new_noise_schedule(self.device, phase="train")
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = OPTIMIZERS[optimizer](params, **self.optimizer_kwargs)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.ema_model = make_ema(self.model) if ema_decay is not None else None

        self.history: dict = _empty_history()
        self.global_step = 0
        self.epoch = 0  # epochs completed = index of the epoch in progress
        self.step_in_epoch = 0
        self.val_outputs: dict = {}  # the first validation batch and its restoration (CPU)
        self._pending: dict | None = None  # resume state applied when training starts
        self._epoch_rng: dict | None = None
        self._epoch_elapsed = 0.0
        self._epoch_done = False
        self._last_val_hole = math.nan
        if resume_path is not None:
            self.load_checkpoint(resume_path)

        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DDP(self.model, device_ids=ids, output_device=ids[0] if ids else None)
            if self.ema_model is not None and resume_path is None:
                update_ema(self.ema_model, self.model, 0.0)  # start from rank 0's broadcast weights
            sampler = getattr(train_loader, "sampler", None)
            if not hasattr(sampler, "set_epoch"):
                self.log("warning: distributed training without a DistributedSampler: every process sees "
                         "the whole training set (give the train loader sampler=DistributedSampler(...))")

    # ------------------------------------------------------------------ set-up helpers
    def _resume_path(self, resume: str | os.PathLike | bool | None) -> Path | None:
        if resume is None or resume is False:
            return None
        if resume is True:
            path = self.save_model / LAST_CHECKPOINT
            if not path.is_file():
                self.log(f"resume=True: no checkpoint at {path} yet, starting fresh")
                return None
            return path
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"resume={os.fspath(resume)!r}: no checkpoint there (use resume=True for "
                                    f"{self.save_model / LAST_CHECKPOINT}, or None to start fresh)")
        return path

    def _init_network(self, init: str) -> None:
        from .nn import init_weights
        from .unet import UNet

        net = getattr(self.model, "denoise_fn", None)
        if not isinstance(net, UNet):
            return
        if any(bool(p.detach().ne(0).any()) for p in net.out[-1].parameters()):
            self.log("init skipped: the UNet's output layer is not zero, so its weights look trained "
                     "(pass init=None to silence this)")
            return
        init_weights(net, init)

    @property
    def _loader_generator(self) -> torch.Generator | None:
        return getattr(self.train_loader, "generator", None)

    def _reached_max_steps(self) -> bool:
        return self.max_steps is not None and self.global_step >= self.max_steps

    # ------------------------------------------------------------------ training
    def train_step(self) -> float:
        """Train one epoch (or the rest of it after a mid-epoch resume, or until ``max_steps``).

        :return: the mean training loss over the epoch's steps (averaged over processes under DDP).
        """
        loader, gen = self.train_loader, self._loader_generator
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        pending, self._pending = self._pending, None
        done = int(pending["step_in_epoch"]) if pending else 0
        if done:
            restore_rng_state(pending["epoch_rng"], gen)  # replay this epoch's shuffling
            self._epoch_rng = pending["epoch_rng"]
        else:
            if pending:
                restore_rng_state(pending["rng"], gen)
            self._epoch_rng = capture_rng_state(gen)
        iterator = iter(loader)
        if done:
            self.log(f"resuming epoch {self.epoch + 1} after its first {done} batches (step {self.global_step})")
            _skip_batches(iterator, done, loader)
            restore_rng_state(pending["rng"], gen)
        if pending and self.dist.rank > 0:
            seed_everything((self.seed or 0) + 7919 * self.dist.rank + self.global_step)
        self.step_in_epoch = done
        losses = list(self.history["step_loss"][-done:]) if done else []
        total = len(loader) if hasattr(loader, "__len__") else None
        reduce = (lambda v: all_reduce_mean(v, self.dist)) if self.dist.enabled else None
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=done, desc=f"epoch {self.epoch + 1}", leave=False, disable=not self.progress)
        self.train_model.train()
        self._epoch_done = False
        try:
            while not self._reached_max_steps():
                if total is not None and self.step_in_epoch >= total:
                    break
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                try:
                    loss = _optimisation_step(self.train_model, batch, self.optimizer, self.device, self.scaler,
                                              self.grad_clip, self.amp_dtype, reduce)
                except FloatingPointError as err:
                    raise FloatingPointError(self._nan_message(err)) from None
                self.global_step += 1
                self.step_in_epoch += 1
                if self.ema_model is not None:
                    decay = ema_decay_at(self.ema_decay, self.global_step - 1, self.ema_warmup)
                    update_ema(self.ema_model, self.model, decay)
                losses.append(loss)
                self.history["step"].append(self.global_step)
                self.history["step_loss"].append(loss)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if self.checkpoint_every and self.global_step % self.checkpoint_every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
        self._epoch_done = total is None or self.step_in_epoch >= total
        if not losses:
            if self._reached_max_steps():
                return math.nan  # nothing left to do
            raise ValueError("the train loader gave no batch: is the data set smaller than one batch (drop_last)?")
        return sum(losses) / len(losses)

    def _nan_message(self, err: Exception) -> str:
        last = self.save_model / LAST_CHECKPOINT
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
        return (
            f"training stopped at step {self.global_step + 1} (epoch {self.epoch + 1}): {err}. "
            f"The weights were not updated with it and {kept} (it is never overwritten with NaN weights). "
            "Try a lower learning rate, grad_clip=1.0, amp=False, or check the data for NaN values."
        )

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def val_step(self) -> tuple[float, float]:
        """Validation on the fixed subset (the first ``val_batches`` batches of ``val_loader``).

        With the EMA weights when EMA is on, in ``eval()`` mode, every random draw seeded from
        ``seed``: the loss under the ``"train"`` schedule, then a ``val_sampler`` restoration under the
        ``"test"`` schedule. MAE = ``mae(gt_image, output)`` over whole images; the MAE over the hole
        only goes to ``history["val_mae_hole"]`` (see :meth:`train`). The global RNG states are put
        back afterwards, so validation never changes the training run.

        :return: ``(valid loss, valid MAE)`` averaged over the subset's batches.
        """
        net = self.ema_model if self.ema_model is not None else self.model
        was_training = net.training
        net.eval()
        seed = self._val_seed
        losses, maes, holes = [], [], []
        try:
            with _isolated_rng(seed, getattr(self.val_loader, "generator", None)):
                batches = []
                for i, batch in enumerate(self.val_loader):
                    if i >= self.val_batches:
                        break
                    batches.append(_batch_to(batch, self.device))
                if not batches:
                    raise ValueError("the validation loader gave no batch")
                gen = torch.Generator().manual_seed(seed)
                net.set_new_noise_schedule(self.device, phase="train")
                for gt_image, cond_image, mask in batches:
                    losses.append(float(net(gt_image, cond_image, mask=mask, generator=gen)))
                net.set_new_noise_schedule(self.device, phase="test")
                steps = self.val_steps or min(20, net.num_timesteps)
                for k, (gt_image, cond_image, mask) in enumerate(batches):
                    output, visuals = net.restoration(
                        cond_image, y_0=gt_image, mask=mask, sample_num=self.sample_num, sampler=self.val_sampler,
                        steps=min(steps, net.num_timesteps) if self.val_sampler == "ddim" else None, generator=gen,
                    )
                    maes.append(float(mae(gt_image, output)))
                    holes.append(float(masked_mae(output, gt_image, mask)))
                    if k == 0:
                        self.val_outputs = {"gt_image": gt_image.cpu(), "cond_image": cond_image.cpu(),
                                            "mask": mask.cpu(), "output": output.cpu(), "visuals": visuals.cpu()}
        finally:
            net.set_new_noise_schedule(self.device, phase="train")
            net.train(was_training)
        self._last_val_hole = sum(holes) / len(holes)
        return sum(losses) / len(losses), sum(maes) / len(maes)

    # ------------------------------------------------------------------ the run
    def train(self) -> dict:
        """Run epochs until ``epochs`` (or ``max_steps``): train, validate, keep the best, checkpoint.

        After each epoch one line goes to ``log``, in the course's format::

            | End of epoch   1 | Time:  1.23s | Train Loss    0.123 | Valid Loss    0.456 | Valid MAE    0.078

        ``best_model.pth`` is rewritten when the validation MAE improves on ``best_mae`` (which is
        updated, erratum 3), and ``last.ckpt`` at every epoch end (and every ``checkpoint_every`` steps).

        :return: :attr:`history`.
        :raises FloatingPointError: a NaN/Inf loss; ``last.ckpt`` keeps the last finite weights.
        """
        from tqdm.auto import tqdm

        bar = tqdm(total=self.epochs, initial=min(self.epoch, self.epochs), desc="epochs", leave=False,
                   disable=not self.progress)
        try:
            while self.epoch < self.epochs and not self._reached_max_steps():
                start = time.time() - self._epoch_elapsed
                train_loss = self.train_step()
                if not self._epoch_done:  # stopped by max_steps inside the epoch
                    self._epoch_elapsed = time.time() - start
                    self.save_checkpoint()
                    break
                val_loss, val_mae = self.val_step()
                self.epoch += 1
                self.step_in_epoch = 0
                self._epoch_elapsed = 0.0
                elapsed = time.time() - start
                self._record_epoch(train_loss, val_loss, val_mae, elapsed)
                self.log(summary_line(self.epoch, elapsed, train_loss, val_loss, val_mae))
                self.save_checkpoint()
                bar.update(1)
                bar.set_postfix(val_mae=f"{val_mae:.4f}")
        finally:
            bar.close()
        return self.history

    def _record_epoch(self, train_loss: float, val_loss: float, val_mae: float, elapsed: float) -> None:
        h = self.history
        h["epoch"].append(self.epoch)
        h["train_loss"].append(train_loss)
        h["val_loss"].append(val_loss)
        h["val_mae"].append(val_mae)
        h["val_mae_hole"].append(self._last_val_hole)
        h["epoch_time"].append(elapsed)
        h["epoch_end_step"].append(self.global_step)
        if val_mae < h["best_mae"]:
            h["best_mae"], h["best_epoch"] = val_mae, self.epoch
            self._save_best()
        h["best_mae_history"].append(h["best_mae"])

    @property
    def best_mae(self) -> float:
        """The lowest validation MAE so far (``inf`` before the first validation)."""
        return self.history["best_mae"]

    # ------------------------------------------------------------------ files
    def _check_finite(self, what: str) -> None:
        if not all_finite(self.model, self.ema_model):
            raise FloatingPointError(
                f"the model holds NaN/Inf weights at step {self.global_step}; {what} was NOT written, "
                f"so the previous file stays the last good one"
            )

    def _save_best(self) -> None:
        if not self.dist.is_main:
            return
        self._check_finite(BEST_MODEL)
        net = self.ema_model if self.ema_model is not None else self.model
        state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        atomic_save(state, self.save_model / BEST_MODEL)

    def _config(self) -> dict:
        return _jsonable({
            "optimizer": self.optimizer_name, "optimizers": self.optimizer_kwargs, "ema_decay": self.ema_decay,
            "ema_warmup": self.ema_warmup, "amp": str(self.amp), "amp_dtype": str(self.amp_dtype),
            "grad_clip": self.grad_clip, "epochs": self.epochs, "max_steps": self.max_steps,
            "sample_num": self.sample_num, "val_batches": self.val_batches, "val_sampler": self.val_sampler,
            "val_steps": self.val_steps, "seed": self.seed, "world_size": self.dist.world_size,
            "network": type(getattr(self.model, "denoise_fn", self.model)).__name__,
            "beta_schedule": getattr(self.model, "beta_schedule", None),
        })

    def checkpoint_state(self) -> dict:
        """Everything needed to continue exactly (see :mod:`ddpm_lab.checkpoints` for the layout)."""
        rng = capture_rng_state(self._loader_generator)
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "ema": None if self.ema_model is None else self.ema_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "step": self.global_step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "epoch_elapsed": float(self._epoch_elapsed),
            "rng": rng,
            "epoch_rng": self._epoch_rng if self.step_in_epoch else rng,
            "history": self.history,
            "best_mae": float(self.history["best_mae"]),
            "config": self._config(),
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``save_model/last.ckpt`` atomically (rank 0 only), plus ``history.json``.

        :raises FloatingPointError: the weights are not finite (the old file is kept).
        """
        if not self.dist.is_main:
            return None
        self._check_finite(LAST_CHECKPOINT)
        path = atomic_save(self.checkpoint_state(), self.save_model / LAST_CHECKPOINT)
        atomic_write_text(json.dumps(_jsonable(self.history), indent=1), self.save_model / HISTORY_FILE)
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore model, EMA, optimiser, scaler, counters and history from a trainer checkpoint; the
        RNG states are restored when training continues (:meth:`train_step`)."""
        ckpt = read_checkpoint(path)
        self.model.load_state_dict(ckpt["model"])
        if self.ema_model is not None:
            if ckpt.get("ema") is not None:
                self.ema_model.load_state_dict(ckpt["ema"])
            else:
                update_ema(self.ema_model, self.model, 0.0)
                self.log("the checkpoint has no EMA weights: the EMA restarts from the model's weights")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.global_step, self.epoch = int(ckpt["step"]), int(ckpt["epoch"])
        self.step_in_epoch = int(ckpt["step_in_epoch"])
        self._epoch_elapsed = float(ckpt.get("epoch_elapsed", 0.0))
        history = _empty_history()
        history.update(ckpt["history"])
        history["best_mae"] = float(ckpt["best_mae"])
        self.history = history
        self._pending = {"step_in_epoch": self.step_in_epoch, "rng": ckpt["rng"], "epoch_rng": ckpt["epoch_rng"]}
        config = ckpt.get("config") or {}
        if config.get("seed") is not None:  # validation stays on the run's own fixed draws
            self._val_seed = int(config["seed"]) + VAL_SEED_OFFSET
        saved_world = config.get("world_size", 1)
        if saved_world != self.dist.world_size:
            self.log(f"note: the checkpoint was written by {saved_world} process(es), this run has "
                     f"{self.dist.world_size}; data order will differ from an uninterrupted run")
        self.log(f"resumed from {os.fspath(path)}: step {self.global_step}, epoch {self.epoch + 1}"
                 + (f" (batch {self.step_in_epoch} done)" if self.step_in_epoch else ""))

    def plot_history(self, path: str | os.PathLike | None = None):
        """Plot :attr:`history` with :func:`ddpm_lab.viz.plot_history` (returns the figure)."""
        from .viz import plot_history

        return plot_history(self.history, path)


def _profile_datasets(profile: Any, data: str | os.PathLike | None, seed: int) -> tuple[Any, Any]:
    """Train and validation datasets for :func:`train_from_profile`."""
    mask_mode = profile.extra.get("mask_mode", "center")
    num_val = profile.num_val or 64
    if data is None or (isinstance(data, str) and data == "offline"):
        from .faces import OfflineFaces

        num_train = profile.num_train or 2048
        train = OfflineFaces(num_train, image_size=profile.image_size, seed=seed, mask_mode=mask_mode)
        # face seed base seed + 2: base 1 is the held-out set the demo and notebook 06 score on (inference.HELDOUT_FACE_SEED)
        val = OfflineFaces(num_val, image_size=profile.image_size, seed=seed + 2, mask_mode=mask_mode, mask_seed=seed)
        return train, val
    from .data import InpaintingDataset, list_images, train_val_split

    paths = list_images(data)
    if profile.num_train is not None and profile.num_train < len(paths):
        train_paths, val_paths = train_val_split(paths, num_train=profile.num_train)
    else:
        train_paths, val_paths = train_val_split(paths, val_fraction=0.1)
    size = profile.image_size
    train = InpaintingDataset(train_paths, mask_mode=mask_mode, image_size=size, seed=None)
    val = InpaintingDataset(val_paths[:num_val], mask_mode=mask_mode, image_size=size, seed=seed)
    return train, val


def train_from_profile(
    profile: Any, data: str | os.PathLike | None = None, out_dir: str | os.PathLike = "runs/ddpm", *,
    network: str = "unet", epochs: int | None = None, max_steps: int | None = None,
    resume: bool | str | os.PathLike = False, seed: int = 0, device: torch.device | str | None = None,
    progress: bool = True, log: Callable[[str], Any] = print,
) -> Trainer:
    """Build everything a profile describes, train, and return the :class:`Trainer`.

    Data: ``None``/``"offline"`` -> :class:`~ddpm_lab.faces.OfflineFaces`: ``profile.num_train``
    faces (face seed base ``seed``, fresh masks and noise every epoch) for training and
    ``profile.num_val`` faces (face seed base ``seed + 2``, fixed masks) for validation; a folder ->
    :func:`~ddpm_lab.data.list_images` + :func:`~ddpm_lab.data.train_val_split` (``num_train`` from
    the profile, else 10% validation) + :class:`~ddpm_lab.data.InpaintingDataset`.
    Model: ``InpaintingGaussianDiffusion(UNet(**profile.unet_config)`` or
    ``SimpleUnet(down_channels=profile.simple_unet_channels), profile.beta_schedule)``.
    Loaders: ``profile.batch_size``, ``profile.num_workers``, shuffling from a ``torch.Generator``
    seeded with ``seed``, ``drop_last`` for training (a ``DistributedSampler`` under torchrun).
    Trainer: ``profile.lr`` / ``weight_decay`` / ``ema_decay`` / ``amp`` / ``sample_num`` /
    ``val_batches``, DDIM validation with ``profile.sample_steps`` steps; ``profile.extra`` may set
    ``mask_mode``, ``optimizer``, ``grad_clip``, ``checkpoint_every``.
    Writes ``out_dir/config.json`` (the profile and these arguments) before training.

    :param profile: a :class:`~ddpm_lab.profiles.Profile` or a profile name.
    :param network: ``"unet"`` (Palette's) or ``"simple"`` (the course's basic UNet).
    :param epochs: override ``profile.epochs``; ``max_steps``: stop after this many steps.
    :param resume: True continues ``out_dir/last.ckpt`` if it exists; or a checkpoint path.
    :param device: default ``"cuda"`` when available, else ``"cpu"``.
    :return: the trainer after ``train()`` (its ``history``, ``ema_model``, ...).
    """
    from torch.utils.data import DataLoader, DistributedSampler

    from .diffusion import InpaintingGaussianDiffusion
    from .profiles import get_profile

    if profile is None or isinstance(profile, str):
        profile = get_profile(profile)
    if network not in ("unet", "simple"):
        raise ValueError(f"network must be 'unet' or 'simple', got {network!r}")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    info = setup_distributed(device)
    try:
        train_ds, val_ds = _profile_datasets(profile, data, seed)
        seed_everything(seed)
        if network == "unet":
            from .unet import UNet

            net: nn.Module = UNet(**profile.unet_config)
        else:
            from .simple_unet import SimpleUnet

            net = SimpleUnet(down_channels=profile.simple_unet_channels)
        model = InpaintingGaussianDiffusion(net, profile.beta_schedule)
        sampler = (DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)
                   if info.enabled else None)
        train_loader = DataLoader(
            train_ds, batch_size=profile.batch_size, shuffle=sampler is None, sampler=sampler,
            num_workers=profile.num_workers, generator=torch.Generator().manual_seed(seed), drop_last=True,
            pin_memory=info.device.type == "cuda",
        )
        if len(train_loader) == 0:
            raise ValueError(f"{len(train_ds)} training images per process give no full batch of "
                             f"{profile.batch_size}: use more images or a smaller batch_size")
        val_loader = DataLoader(val_ds, batch_size=profile.batch_size, shuffle=False, num_workers=0)
        run = {"network": network, "data": "offline" if data is None else os.fspath(data), "seed": seed,
               "epochs": epochs or profile.epochs, "max_steps": max_steps, "world_size": info.world_size,
               "num_train_images": len(train_ds), "num_val_images": len(val_ds)}
        if info.is_main:
            atomic_write_text(json.dumps(_jsonable({"profile": asdict(profile), "run": run}), indent=1),
                              Path(out_dir) / "config.json")
        extra = profile.extra
        trainer = Trainer(
            model, {"lr": profile.lr, "weight_decay": profile.weight_decay}, train_loader, val_loader,
            epochs or profile.epochs, profile.sample_num, info.device, out_dir,
            optimizer=extra.get("optimizer", "adam"), ema_decay=profile.ema_decay,
            amp="auto" if profile.amp else False, grad_clip=extra.get("grad_clip", 1.0),
            checkpoint_every=extra.get("checkpoint_every"), val_batches=profile.val_batches,
            val_steps=profile.sample_steps, resume=resume if resume else None, max_steps=max_steps,
            seed=seed, progress=progress, log=log,
        )
        trainer.train()
        return trainer
    finally:
        cleanup_distributed(info)
