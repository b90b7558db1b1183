"""Checks for notebook 05 (the trainer): one training step and the EMA update."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..diffusion import BUFFER_NAMES, InpaintingGaussianDiffusion
from ..ema import make_ema, update_ema
from ..profiles import COURSE_BETA_SCHEDULE
from ..simple_unet import SimpleUnet
from ..trainer import training_step
from .core import check_function, register, seeded

NOTEBOOK = "05_trainer"
_CHANNELS = (4, 8, 16, 32, 64)
_SENTINEL = 100.0  # put into every .grad between the two steps: zero_grad must remove it


def _tiny_model(seed: int, beta_schedule: dict | None = None) -> InpaintingGaussianDiffusion:
    torch.manual_seed(seed)
    return InpaintingGaussianDiffusion(SimpleUnet(down_channels=_CHANNELS), beta_schedule or COURSE_BETA_SCHEDULE)


def _batch(seed: int) -> dict:
    g = seeded(seed)
    gt = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    cond = gt * (1 - mask) + mask * torch.randn(gt.shape, generator=g)
    return {"gt_image": gt, "cond_image": cond, "mask_image": gt * (1 - mask) + mask, "mask": mask, "path": ["a", "b"]}


def _scalar(x) -> float:
    """The value of a returned loss (a float, a tensor), NaN for anything else (e.g. a forgotten return)."""
    try:
        return float(x.detach()) if torch.is_tensor(x) else float(x)
    except (TypeError, ValueError):
        return math.nan


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).float() for t in tensors])


# ---------------------------------------------------------------------------------------- training_step
def _run_steps(step_fn: Callable) -> dict:
    """Two calls of ``step_fn`` on a fresh seeded model; what changed, as comparable data."""
    model = _tiny_model(0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = _flat(model.parameters())
    torch.manual_seed(1)  # the model's own noise draws (t, gamma, eps) use the global generator
    first = step_fn(model, _batch(2), optimizer, "cpu")
    for p in model.parameters():
        p.grad = torch.full_like(p, _SENTINEL)
    second = step_fn(model, _batch(3), optimizer, "cpu")
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    return {
        "returns_float": float(isinstance(first, float) and isinstance(second, float)),
        "losses": torch.tensor([_scalar(first), _scalar(second)]),
        "weights_changed": float(not torch.equal(_flat(model.parameters()), start)),
        "weights": _flat(model.parameters()),
        "grads": _flat(grads),
    }


def _mistake_step_no_zero_grad(model, batch, optimizer, device, scaler=None, grad_clip=None, amp_dtype=None):
    loss = model(batch["gt_image"].to(device), batch["cond_image"].to(device), mask=batch["mask"].to(device))
    loss.backward()
    optimizer.step()
    return loss.item()


def _mistake_step_no_step(model, batch, optimizer, device, scaler=None, grad_clip=None, amp_dtype=None):
    optimizer.zero_grad()
    loss = model(batch["gt_image"].to(device), batch["cond_image"].to(device), mask=batch["mask"].to(device))
    loss.backward()
    return loss.item()


def _mistake_step_before_backward(model, batch, optimizer, device, scaler=None, grad_clip=None, amp_dtype=None):
    optimizer.zero_grad()
    loss = model(batch["gt_image"].to(device), batch["cond_image"].to(device), mask=batch["mask"].to(device))
    optimizer.step()
    loss.backward()
    return loss.item()


def _mistake_step_tensor(model, batch, optimizer, device, scaler=None, grad_clip=None, amp_dtype=None):
    optimizer.zero_grad()
    loss = model(batch["gt_image"].to(device), batch["cond_image"].to(device), mask=batch["mask"].to(device))
    loss.backward()
    optimizer.step()
    return loss


def _mistake_step_swapped_inputs(model, batch, optimizer, device, scaler=None, grad_clip=None, amp_dtype=None):
    optimizer.zero_grad()
    loss = model(batch["cond_image"].to(device), batch["gt_image"].to(device), mask=batch["mask"].to(device))
    loss.backward()
    optimizer.step()
    return loss.item()


def _mistake_step_no_mask(model, batch, optimizer, device, scaler=None, grad_clip=None, amp_dtype=None):
    optimizer.zero_grad()
    loss = model(batch["gt_image"].to(device), batch["cond_image"].to(device))
    loss.backward()
    optimizer.step()
    return loss.item()


@register("training_step", NOTEBOOK, training_step, mistakes=[
    (_mistake_step_tensor, "loss.item()"),
    (_mistake_step_no_step, "weights did not change"),
    (_mistake_step_before_backward, "weights did not change"),
    (_mistake_step_no_zero_grad, "zero_grad"),
    (_mistake_step_swapped_inputs, "ground truth first"),
    (_mistake_step_no_mask, "mask="),
])
def check_training_step(student: Callable, quiet: bool = False) -> Callable:
    """Check ``training_step(model, batch, optimizer, device)``: two steps on a tiny model, compared
    with the reference (losses, weights, and what is left in ``.grad``)."""

    def key_differs(name: str, atol: float = 1e-6):
        return lambda g, w, a, k: isinstance(g, dict) and not torch.allclose(g[name], w[name], atol=atol)

    def grads_kept(g, w, a, k):
        return isinstance(g, dict) and bool(((g["grads"] - w["grads"]) - _SENTINEL).abs().max() < 1e-3)

    def first_loss_differs(g, w, a, k):
        return isinstance(g, dict) and abs(float(g["losses"][0] - w["losses"][0])) > 1e-6

    hints = [
        (lambda g, w, a, k: isinstance(g, dict) and not g["returns_float"],
         "return loss.item(), a Python float: a loss tensor keeps its whole autograd graph alive."),
        (lambda g, w, a, k: isinstance(g, dict) and not g["weights_changed"],
         "the weights did not change: optimizer.step() updates them from the gradients, so it comes after loss.backward()."),
        (grads_kept, "gradients from the previous step were still there: PyTorch adds new gradients to old ones, "
                     "so clear them (optimizer.zero_grad()) before loss.backward()."),
        (first_loss_differs, "the loss differs from the first step on: call the model as the course does, "
                             "the ground truth first, then the condition image, and the mask by keyword (mask=...)."),
        (key_differs("weights"), "the weights differ after two steps: once per call, in this order: "
                                 "zero_grad, loss = model(...), backward, step."),
    ]
    _, result = check_function("training_step", _wrap_steps(student), _wrap_steps(training_step), [((), {})], hints,
                               atol=1e-5, rtol=1e-4, quiet=quiet)
    return student if result.passed else training_step


def _wrap_steps(step_fn: Callable) -> Callable:
    def run():
        return _run_steps(step_fn)
    return run


# ---------------------------------------------------------------------------------------- EMA
_TWO_PHASES = {"train": COURSE_BETA_SCHEDULE, "test": {"schedule": "linear", "n_timestep": 20, "linear_start": 1e-4, "linear_end": 0.2}}


def _ema_scene() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A model and its EMA copy that differ in every weight and BatchNorm statistic; the EMA copy
    holds the "test" schedule, the model the "train" one (different buffers)."""
    model = _tiny_model(5, _TWO_PHASES)
    ema = make_ema(model)
    ema.set_new_noise_schedule("cpu", phase="test")
    g = seeded(6)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
        for name, b in model.named_buffers():
            if name not in BUFFER_NAMES and b.is_floating_point():
                b.add_(torch.rand(b.shape, generator=g))
    return model, ema


def _run_ema(update_fn: Callable) -> dict:
    model, ema = _ema_scene()
    update_fn(ema, model, 0.9)
    update_fn(ema, model, 0.5)
    state = ema.state_dict()
    return {
        "params": _flat(p for _, p in ema.named_parameters()),
        "net_buffers": _flat(b for n, b in ema.named_buffers() if n not in BUFFER_NAMES and b.is_floating_point()),
        "schedule": _flat(state[n] for n in BUFFER_NAMES),
    }


def _mistake_ema_swapped(ema, model, decay):
    update_ema(ema, model, 1.0 - decay)


def _mistake_ema_copy(ema, model, decay):
    update_ema(ema, model, 0.0)


@torch.no_grad()
def _mistake_ema_rebind(ema, model, decay):
    params = dict(model.named_parameters())
    for name, ema_p in ema.named_parameters():
        ema_p = decay * ema_p + (1 - decay) * params[name]  # noqa: F841 - the mistake: rebinding, not in place


@torch.no_grad()
def _mistake_ema_no_buffers(ema, model, decay):
    params = dict(model.named_parameters())
    for name, ema_p in ema.named_parameters():
        ema_p.mul_(decay).add_(params[name], alpha=1 - decay)


@torch.no_grad()
def _mistake_ema_all_buffers(ema, model, decay):
    _mistake_ema_no_buffers(ema, model, decay)
    buffers = dict(model.named_buffers())
    for name, b in ema.named_buffers():
        b.copy_(buffers[name])


@register("update_ema", NOTEBOOK, update_ema, mistakes=[
    (_mistake_ema_swapped, "decay multiplies"),
    (_mistake_ema_copy, "copied"),
    (_mistake_ema_rebind, "in place"),
    (_mistake_ema_no_buffers, "BatchNorm"),
    (_mistake_ema_all_buffers, "schedule"),
])
def check_update_ema(student: Callable, quiet: bool = False) -> Callable:
    """Check ``update_ema(ema, model, decay)``: two in-place updates of an EMA copy, compared with the reference."""
    model, ema0 = _ema_scene()
    start = _flat(p for _, p in ema0.named_parameters())
    target = _flat(p for _, p in model.named_parameters())

    def params_equal(x: torch.Tensor) -> Callable:
        return lambda g, w, a, k: isinstance(g, dict) and torch.allclose(g["params"], x, atol=1e-6)

    def swapped(g, w, a, k):
        if not isinstance(g, dict):
            return False
        want = start
        for d in (0.1, 0.5):  # the decays with the roles of old and new swapped
            want = d * want + (1 - d) * target
        return torch.allclose(g["params"], want, atol=1e-5)

    hints = [
        (params_equal(start), "the EMA weights did not change: update them in place (ema_p.mul_(...).add_(...) "
                              "or ema_p.copy_(...)); assigning to the loop variable changes nothing."),
        (params_equal(target), "you copied the model's weights: the EMA is an average, decay * ema + (1 - decay) * param."),
        (swapped, "decay multiplies the running average (the old EMA value) and 1 - decay the model's new weight: "
                  "with decay = 0.999 the average moves slowly."),
        (lambda g, w, a, k: isinstance(g, dict) and not torch.allclose(g["params"], w["params"], atol=1e-5),
         "the averaged weights differ: one update per parameter, ema = decay * ema + (1 - decay) * param."),
        (lambda g, w, a, k: isinstance(g, dict) and not torch.allclose(g["schedule"], w["schedule"]),
         "leave the diffusion schedule buffers (gammas, posterior_*) alone: they are configuration, not weights, "
         "and the EMA copy may hold the other phase's schedule."),
        (lambda g, w, a, k: isinstance(g, dict) and not torch.allclose(g["net_buffers"], w["net_buffers"]),
         "copy the network's other buffers as they are (the BatchNorm running mean and variance are not averaged)."),
    ]
    _, result = check_function("update_ema", lambda: _run_ema(student), lambda: _run_ema(update_ema), [((), {})], hints,
                               atol=1e-6, rtol=1e-5, quiet=quiet)
    return student if result.passed else update_ema
