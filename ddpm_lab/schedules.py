"""Noise schedules and the quantities derived from them, in float64.

Notation (Ho et al. 2020, Palette): ``betas`` = beta_t, ``alphas`` = 1 - beta_t,
``gammas`` = alpha-bar_t = prod_{s<=t} alpha_s (``alphas_cumprod`` in diffusers), and
``gammas_prev`` = gammas shifted right by one with a leading 1. Index 0 is the first noising step.

Everything here is plain numpy float64; :class:`~ddpm_lab.diffusion.InpaintingGaussianDiffusion`
casts to float32 buffers at the very end, as Palette and guided-diffusion do.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

SCHEDULES = ("linear", "cosine", "quad", "const")


def _check_number(name: str, value: object) -> float:
    if isinstance(value, str):
        raise ValueError(
            f"{name} must be a number, got the string {value!r}. The course's printed config quotes "
            f'linear_end ("0.09"): write {name}={value.strip()} without quotes.'
        )
    if not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def make_beta_schedule(
    schedule: str,
    n_timestep: int,
    linear_start: float = 1e-4,
    linear_end: float = 2e-2,
    cosine_s: float = 8e-3,
) -> np.ndarray:
    """Variance schedule beta_1..beta_T as a float64 array of length ``n_timestep``.

    - ``"linear"``: beta_t = linspace(linear_start, linear_end, T) (Ho et al.; the course uses
      T=20, 1e-4..0.09; Palette trains on T=2000, 1e-6..0.01 and samples on T=1000, 1e-4..0.09).
    - ``"quad"``: beta_t = linspace(sqrt(linear_start), sqrt(linear_end), T)^2.
    - ``"cosine"``: Nichol & Dhariwal (2021): gamma(t) = cos^2(((t/T + s) / (1 + s)) * pi/2),
      beta_t = min(1 - gamma(t) / gamma(t-1), 0.999), with s = ``cosine_s`` = 0.008.
    - ``"const"``: beta_t = linear_end.

    :param schedule: one of ``"linear"``, ``"cosine"``, ``"quad"``, ``"const"``.
    :param n_timestep: number of diffusion steps T (>= 1).
    :param linear_start: beta_1 for the linear/quad schedules.
    :param linear_end: beta_T for the linear/quad schedules.
    :param cosine_s: the small offset s of the cosine schedule.
    :return: betas, float64, shape (T,), every value in (0, 1).
    """
    if isinstance(n_timestep, bool) or not isinstance(n_timestep, (int, np.integer)) or n_timestep < 1:
        raise ValueError(f"n_timestep must be a positive integer, got {n_timestep!r}")
    start = _check_number("linear_start", linear_start)
    end = _check_number("linear_end", linear_end)
    if schedule == "linear":
        betas = np.linspace(start, end, n_timestep, dtype=np.float64)
    elif schedule == "quad":
        betas = np.linspace(start**0.5, end**0.5, n_timestep, dtype=np.float64) ** 2
    elif schedule == "const":
        betas = np.full(n_timestep, end, dtype=np.float64)
    elif schedule == "cosine":
        betas = cosine_betas(n_timestep, _check_number("cosine_s", cosine_s))
    else:
        raise ValueError(f"unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
    if not np.all((betas > 0) & (betas < 1)):
        raise ValueError(
            f"every beta must lie in (0, 1); got min {betas.min():.3g}, max {betas.max():.3g} "
            f"(check linear_start={start} and linear_end={end})"
        )
    return betas


def cosine_betas(n_timestep: int, cosine_s: float = 8e-3, max_beta: float = 0.999) -> np.ndarray:
    """The cosine schedule of Nichol & Dhariwal (2021), float64.

    gamma(t) = cos^2(((t / T + s) / (1 + s)) * pi / 2) for t = 0, 1, ..., T (so gamma(0) is about 1),
    beta_t = min(1 - gamma(t) / gamma(t - 1), max_beta) for t = 1, ..., T. The clip stops the last
    beta from reaching 1 (gamma(T) = cos^2(pi / 2) = 0).

    :param n_timestep: number of steps T.
    :param cosine_s: the small offset s, so beta_1 is not vanishingly small.
    :param max_beta: upper clip of every beta.
    :return: betas, float64, shape (T,).
    """
    t = np.arange(n_timestep + 1, dtype=np.float64) / n_timestep  # (T+1,) t/T
    gamma = np.cos((t + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2  # (T+1,)
    return np.minimum(1.0 - gamma[1:] / gamma[:-1], max_beta)


def posterior_coefficients(betas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coefficients of the forward-process posterior q(y_{t-1} | y_t, y_0), in float64.

    q(y_{t-1} | y_t, y_0) = N(coef1_t y_0 + coef2_t y_t, beta~_t I) with alpha_t = 1 - beta_t,
    gamma_t = prod_{s<=t} alpha_s and gamma_{t-1} (gamma before the first step = 1):

    - beta~_t  = beta_t (1 - gamma_{t-1}) / (1 - gamma_t)   (the course quiz, question 6)
    - coef1_t  = beta_t sqrt(gamma_{t-1}) / (1 - gamma_t)
    - coef2_t  = (1 - gamma_{t-1}) sqrt(alpha_t) / (1 - gamma_t)

    :param betas: float array (T,) with values in (0, 1).
    :return: ``(posterior_variance, posterior_mean_coef1, posterior_mean_coef2)``, each (T,).
    """
    betas = np.asarray(betas, dtype=np.float64)
    alphas = 1.0 - betas
    gammas = np.cumprod(alphas)  # (T,)
    gammas_prev = np.append(1.0, gammas[:-1])  # (T,)
    variance = betas * (1.0 - gammas_prev) / (1.0 - gammas)
    coef1 = betas * np.sqrt(gammas_prev) / (1.0 - gammas)
    coef2 = (1.0 - gammas_prev) * np.sqrt(alphas) / (1.0 - gammas)
    return variance, coef1, coef2


def schedule_quantities(betas: np.ndarray) -> dict[str, np.ndarray]:
    """Every quantity the diffusion needs, computed from ``betas`` in float64.

    With alpha_t = 1 - beta_t, gamma_t = prod_{s<=t} alpha_s and gamma_{t-1} (gamma_{-1} = 1):

    - forward:   q(y_t | y_0) = N(sqrt(gamma_t) y_0, (1 - gamma_t) I)
    - inversion: y_0 = sqrt(1/gamma_t) y_t - sqrt(1/gamma_t - 1) eps
    - posterior: q(y_{t-1} | y_t, y_0) = N(coef1_t y_0 + coef2_t y_t, beta~_t I), see
      :func:`posterior_coefficients`.
    - ``posterior_log_variance_clipped`` = log(max(beta~_t, 1e-20)) as Palette computes it
      (beta~_0 = 0, so index 0 holds log(1e-20) = -46.05).
    - ``snr`` = gamma_t / (1 - gamma_t).

    :param betas: float array (T,) with values in (0, 1).
    :return: dict of float64 arrays, each of shape (T,).
    """
    betas = np.asarray(betas, dtype=np.float64)
    alphas = 1.0 - betas
    gammas = np.cumprod(alphas)
    gammas_prev = np.append(1.0, gammas[:-1])
    posterior_variance, coef1, coef2 = posterior_coefficients(betas)
    return {
        "betas": betas,
        "alphas": alphas,
        "gammas": gammas,
        "gammas_prev": gammas_prev,
        "sqrt_gammas": np.sqrt(gammas),
        "sqrt_one_minus_gammas": np.sqrt(1.0 - gammas),
        "sqrt_recip_gammas": np.sqrt(1.0 / gammas),
        "sqrt_recipm1_gammas": np.sqrt(1.0 / gammas - 1.0),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": np.log(np.maximum(posterior_variance, 1e-20)),
        "posterior_mean_coef1": coef1,
        "posterior_mean_coef2": coef2,
        "snr": gammas / (1.0 - gammas),
    }


def extract(values: torch.Tensor, t: torch.Tensor, x_shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """Pick ``values[t]`` per batch element and shape it to broadcast against ``x_shape``.

    out[b, 0, ..., 0] = values[t[b]]; the result lives on ``t``'s device, so no global ``device``
    is needed (course erratum 2).

    :param values: 1-D tensor (T,) of per-step quantities.
    :param t: long tensor (B,) of step indices in [0, T).
    :param x_shape: shape of the tensor the result multiplies, e.g. (B, C, H, W).
    :return: tensor (B, 1, ..., 1) with ``len(x_shape)`` dimensions.
    """
    if t.dim() != 1:
        raise ValueError(f"t must be a 1-D tensor of step indices (B,), got shape {tuple(t.shape)}")
    out = values.to(t.device).gather(0, t.long())  # (B,)
    return out.reshape(t.shape[0], *((1,) * (len(x_shape) - 1)))


def get_index_from_list(
    vals: torch.Tensor, t: torch.Tensor, x_shape: tuple[int, ...] | torch.Size = (1, 1, 1, 1)
) -> torch.Tensor:
    """The course's name for :func:`extract` (with the global-``device`` erratum fixed)."""
    return extract(vals, t, x_shape)
