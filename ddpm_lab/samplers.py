"""Reverse-process samplers for inpainting, shared by the notebooks, the CLI and the app.

- ``"ddpm"``: ancestral sampling, the course's ``restoration`` (T network calls);
- ``"ddim"``: DDIM (Song et al. 2021) on any subsequence of the schedule, ``eta`` = 0 is deterministic;
- ``"repaint"``: ancestral sampling with RePaint's resampling jumps (Lugmayr et al. 2022): after every
  ``jump_length`` steps, re-noise ``jump_length`` steps forward and denoise again,
  ``jump_n_sample - 1`` extra times, so the hole can agree with the known region.

Every sampler pastes the known region back after each step, y = y_0 (1 - mask) + mask y,
which is what a Palette-trained network saw in training (mask = 1 in the hole).
The network is conditioned on gamma, so any subsequence of the schedule is valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import Tensor

from .diffusion import _randn_like

if TYPE_CHECKING:
    from .diffusion import InpaintingGaussianDiffusion

SAMPLERS = ("ddpm", "ddim", "repaint")


@dataclass
class StepOutput:
    """What one reverse step returns (diffusers' naming)."""

    prev_sample: Tensor  # (B, C, H, W) the next, less noisy, image
    pred_original_sample: Tensor  # (B, C, H, W) the step's estimate of y_0


@dataclass
class SampleOutput:
    """A finished run: the result and the trajectory frames (the start first)."""

    sample: Tensor  # (B, C, H, W)
    frames: list[Tensor] = field(default_factory=list)  # each (B, C, H, W)
    timesteps: list[int] = field(default_factory=list)  # the step index after which each frame was taken


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` indices spread evenly over [0, T-1], largest first, always ending at 0."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be between 1 and the schedule's {num_timesteps} steps, got {steps}")
    ts = np.unique(np.round(np.linspace(0, num_timesteps - 1, steps)).astype(int))
    return [int(t) for t in ts[::-1]]


def ddim_step(
    noise_pred: Tensor,
    y_t: Tensor,
    gamma_t: float,
    gamma_prev: float,
    eta: float = 0.0,
    clip_denoised: bool = True,
    generator: torch.Generator | None = None,
) -> StepOutput:
    """One DDIM step from noise level gamma_t to gamma_prev (> gamma_t; 1.0 means "clean").

    y_0_hat = (y_t - sqrt(1 - gamma_t) eps) / sqrt(gamma_t)     (clipped; eps re-derived from it)
    sigma   = eta sqrt((1 - gamma_prev) / (1 - gamma_t)) sqrt(1 - gamma_t / gamma_prev)
    y_prev  = sqrt(gamma_prev) y_0_hat + sqrt(1 - gamma_prev - sigma^2) eps + sigma z

    :param noise_pred: the network's eps estimate at gamma_t, like ``y_t``.
    :param eta: 0 = deterministic DDIM, 1 = DDPM-like variance.
    """
    y_0_hat = (y_t - math.sqrt(1.0 - gamma_t) * noise_pred) / math.sqrt(gamma_t)
    if clip_denoised:
        y_0_hat = y_0_hat.clamp(-1.0, 1.0)
        noise_pred = (y_t - math.sqrt(gamma_t) * y_0_hat) / math.sqrt(1.0 - gamma_t)
    sigma = eta * math.sqrt((1.0 - gamma_prev) / (1.0 - gamma_t)) * math.sqrt(1.0 - gamma_t / gamma_prev)
    direction = math.sqrt(max(1.0 - gamma_prev - sigma**2, 0.0)) * noise_pred
    prev = math.sqrt(gamma_prev) * y_0_hat + direction
    if sigma > 0:
        prev = prev + sigma * _randn_like(y_t, generator)
    return StepOutput(prev_sample=prev, pred_original_sample=y_0_hat)


def repaint_schedule(num_timesteps: int, jump_length: int = 10, jump_n_sample: int = 10) -> list[int]:
    """RePaint's time list: T-1, T-2, ..., with forward jumps, ending with -1 ("clean").

    Consecutive pairs (a, b) with b < a are denoising steps from index a; b > a re-noise from a to b.
    """
    if jump_length < 1 or jump_n_sample < 1:
        raise ValueError("jump_length and jump_n_sample must be >= 1")
    jumps = {j: jump_n_sample - 1 for j in range(0, num_timesteps - jump_length, jump_length)}
    t, times = num_timesteps, []
    while t >= 1:
        t -= 1
        times.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                times.append(t)
    times.append(-1)
    return times


def paste_known(y_t: Tensor, y_0: Tensor, mask: Tensor) -> Tensor:
    """Keep the known region: y_0 (1 - mask) + mask y_t (mask = 1 in the hole).

    The course's ``y_t = y_0*(1.-mask) + mask*y_t`` after every reverse step: outside the hole the
    result is exactly y_0, inside it is the sampler's y_t.

    :param y_t: the current sample (B, C, H, W).
    :param y_0: the image whose known pixels are kept (B, C, H, W).
    :param mask: (B, 1, H, W) or (B, C, H, W), 1 = hole.
    :return: tensor like ``y_t``.
    """
    return y_0 * (1.0 - mask) + mask * y_t


def _paste(y: Tensor, y_0: Tensor | None, mask: Tensor | None) -> Tensor:
    """:func:`paste_known`, or ``y`` unchanged when there is no mask."""
    return y if mask is None else paste_known(y, y_0, mask)


def _validate(y_cond: Tensor, y_t: Tensor | None, y_0: Tensor | None, mask: Tensor | None) -> None:
    if y_cond.dim() != 4:
        raise ValueError(f"y_cond must be (B, C, H, W), got shape {tuple(y_cond.shape)}")
    if mask is not None:
        if y_0 is None:
            raise ValueError("a mask needs y_0 (the image whose known region is kept); pass y_0=y_cond if unsure")
        if mask.dim() != 4 or mask.shape[0] != y_cond.shape[0] or mask.shape[-2:] != y_cond.shape[-2:]:
            raise ValueError(f"mask must be (B, 1, H, W) matching y_cond {tuple(y_cond.shape)}, got {tuple(mask.shape)}")
    if y_t is not None and y_t.shape[-2:] != y_cond.shape[-2:]:
        raise ValueError(f"y_t {tuple(y_t.shape)} and y_cond {tuple(y_cond.shape)} differ in size")


@torch.no_grad()
def sample(
    diffusion: "InpaintingGaussianDiffusion",
    y_cond: Tensor,
    y_t: Tensor | None = None,
    y_0: Tensor | None = None,
    mask: Tensor | None = None,
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float = 0.0,
    jump_length: int = 10,
    jump_n_sample: int = 10,
    sample_num: int = 8,
    clip_denoised: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: Callable[[int, int], None] | None = None,
) -> SampleOutput:
    """Run a sampler over ``diffusion``'s current schedule (call ``set_new_noise_schedule`` first
    to pick the ``"test"`` phase).

    :param y_cond: condition image (B, C, H, W); the network input is cat[y_cond, y_t].
    :param y_t: the start (default N(0, I) from ``generator``).
    :param y_0: image whose known region is pasted back; ``mask`` (B, 1, H, W), 1 = hole.
    :param sampler: ``"ddpm"``, ``"ddim"`` or ``"repaint"``.
    :param steps: DDIM's number of steps (default: all T); DDPM and RePaint always use all T.
    :param eta: DDIM's noise scale (0 = deterministic).
    :param jump_length: RePaint: steps per jump; ``jump_n_sample``: passes over each stretch.
    :param sample_num: keep a frame every ``len(plan) // sample_num`` steps (the course's rule),
        so about ``sample_num`` frames besides the start; the last frame is the result.
    :param generator: a ``torch.Generator`` for every random draw (start and step noise).
    :param progress: show a tqdm progress bar.
    :param callback: called as ``callback(done, total)`` after every step (e.g. a web page's progress bar).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    _validate(y_cond, y_t, y_0, mask)
    num_t = diffusion.num_timesteps
    if sampler != "ddim" and steps not in (None, num_t):
        raise ValueError(
            f"the {sampler} sampler runs all {num_t} steps of the schedule; use sampler='ddim' for "
            f"fewer steps, or set a shorter schedule with set_new_noise_schedule"
        )
    if sample_num < 1:
        raise ValueError("sample_num must be >= 1")

    y = y_t if y_t is not None else _randn_like(y_cond, generator)
    y = _paste(y, y_0, mask)

    if sampler == "ddim":
        ts = ddim_timesteps(num_t, steps or num_t)
        plan = list(zip(ts, ts[1:] + [-1]))
    elif sampler == "ddpm":
        plan = [(t, t - 1) for t in range(num_t - 1, -1, -1)]
    else:
        times = repaint_schedule(num_t, jump_length, jump_n_sample)
        plan = list(zip(times[:-1], times[1:]))

    gammas = diffusion.schedule["gammas"]  # float64 (T,)
    every = max(len(plan) // sample_num, 1)
    frames, frame_ts = [y], [num_t]
    from tqdm.auto import tqdm

    b = y.shape[0]
    for k, (t, t_next) in enumerate(tqdm(plan, desc=sampler, disable=not progress, leave=False)):
        if t_next > t:  # RePaint: re-noise one step forward, y_{t+1} ~ N(sqrt(alpha) y_t, beta I)
            alpha = gammas[t_next] / gammas[t]
            y = math.sqrt(alpha) * y + math.sqrt(1.0 - alpha) * _randn_like(y, generator)
        elif sampler == "ddim":
            gamma_t = float(gammas[t])
            noise_pred = diffusion.predict_noise(y, torch.full((b, 1), gamma_t, device=y.device, dtype=y.dtype), y_cond)
            gamma_prev = 1.0 if t_next < 0 else float(gammas[t_next])
            y = ddim_step(noise_pred, y, gamma_t, gamma_prev, eta, clip_denoised, generator).prev_sample
        else:
            t_batch = torch.full((b,), t, device=y.device, dtype=torch.long)
            y = diffusion.p_sample(y, t_batch, clip_denoised=clip_denoised, y_cond=y_cond, generator=generator)
        y = _paste(y, y_0, mask)
        if callback is not None:
            callback(k + 1, len(plan))
        if (len(plan) - 1 - k) % every == 0:  # as the course: every T // sample_num steps, ending at 0
            frames.append(y)
            frame_ts.append(t_next)
    return SampleOutput(sample=y, frames=frames, timesteps=frame_ts)
