"""Checks for notebook 04 (diffusion maths): the cosine schedule, q_sample, the posterior, a DDIM step."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from ..diffusion import q_sample
from ..samplers import ddim_step
from ..schedules import cosine_betas, make_beta_schedule, posterior_coefficients, schedule_quantities
from .core import check_function, register, same_as, seeded

NOTEBOOK = "04_diffusion_math"


def _close(a: Any, b: Any, atol: float = 1e-6) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=1e-4, equal_nan=False))


# ---------------------------------------------------------------------------------------- cosine
def _cosine_cases() -> list:
    return [((20,), {}), ((1000,), {}), ((7,), {"cosine_s": 0.02}), ((12,), {"max_beta": 0.5})]


def _cos_gammas(n: int, s: float, square: bool = True, offset: bool = True) -> np.ndarray:
    t = np.arange(n + 1, dtype=np.float64) / n
    arg = ((t + s) / (1 + s) if offset else t) * math.pi / 2
    return np.cos(arg) ** (2 if square else 1)


def _mistake_cos_no_clip(n_timestep, cosine_s=8e-3, max_beta=0.999):
    g = _cos_gammas(n_timestep, cosine_s)
    return 1.0 - g[1:] / g[:-1]


def _mistake_cos_gammas(n_timestep, cosine_s=8e-3, max_beta=0.999):
    return _cos_gammas(n_timestep, cosine_s)[1:]


def _mistake_cos_no_offset(n_timestep, cosine_s=8e-3, max_beta=0.999):
    g = _cos_gammas(n_timestep, cosine_s, offset=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.minimum(1.0 - g[1:] / g[:-1], max_beta)


def _mistake_cos_not_squared(n_timestep, cosine_s=8e-3, max_beta=0.999):
    g = _cos_gammas(n_timestep, cosine_s, square=False)
    return np.minimum(1.0 - g[1:] / g[:-1], max_beta)


def _mistake_cos_t_plus_one(n_timestep, cosine_s=8e-3, max_beta=0.999):
    g = _cos_gammas(n_timestep, cosine_s)
    return np.minimum(1.0 - g[1:] / g[:-1], max_beta)[:-1] if n_timestep > 1 else g[:1]


def _cos_arg(args: tuple, kwargs: dict) -> tuple[int, float, float]:
    n = args[0]
    return n, kwargs.get("cosine_s", args[1] if len(args) > 1 else 8e-3), kwargs.get("max_beta", args[2] if len(args) > 2 else 0.999)


@register("cosine_betas", NOTEBOOK, cosine_betas, mistakes=[
    (_mistake_cos_t_plus_one, "T + 1"),
    (_mistake_cos_gammas, "betas, not the gammas"),
    (_mistake_cos_no_clip, "max_beta"),
    (_mistake_cos_not_squared, "squared"),
    (_mistake_cos_no_offset, "offset s"),
])
def check_cosine_betas(student: Callable, quiet: bool = False) -> Callable:
    """Check ``cosine_betas(n_timestep, cosine_s=0.008, max_beta=0.999)``: Nichol & Dhariwal's betas."""

    def gammas_returned(g, w, a, k):
        g = np.asarray(g, dtype=np.float64)
        return g.shape == w.shape and bool(np.all(np.diff(g) <= 0)) and g[0] > 0.5

    def not_clipped(g, w, a, k):
        n, s, top = _cos_arg(a, k)
        g = np.asarray(g, dtype=np.float64)
        return g.shape == w.shape and g.max() > top and _close(g[:-1], w[:-1])

    def not_squared(g, w, a, k):
        g = np.asarray(g, dtype=np.float64)
        return g.shape == w.shape and _close(g[:-1], 1.0 - np.sqrt(1.0 - w[:-1]), atol=1e-5)

    def no_offset(g, w, a, k):
        g = np.asarray(g, dtype=np.float64)
        return g.shape == w.shape and np.isfinite(g[0]) and g[0] < 0.9 * w[0]

    hints = [
        (lambda g, w, a, k: np.asarray(g).shape != w.shape,
         "evaluate gamma(t) at the T + 1 points t = 0, 1, ..., T; consecutive ratios then give exactly T betas."),
        (gammas_returned, "return the betas, not the gammas: beta_t comes from the ratio of consecutive gamma values."),
        (not_clipped, "gamma(T) is (almost) 0, so the last beta is (almost) 1: clip every beta at max_beta."),
        (not_squared, "gamma(t) is the cosine squared, not the cosine."),
        (no_offset, "your first betas are too small: include the small offset s, (t/T + s) / (1 + s), inside the cosine."),
    ]
    fn, _ = check_function("cosine_betas", student, cosine_betas, _cosine_cases(), hints, atol=1e-8, rtol=1e-6, quiet=quiet)
    return fn


# ---------------------------------------------------------------------------------------- q_sample
def _q_cases() -> list:
    g = seeded(4)
    cases = []
    for gammas in (torch.rand(3, 1, 1, 1, generator=g) * 0.98 + 0.01, torch.tensor([[[[0.3945]]]]), torch.tensor([0.999, 0.02]).view(2, 1, 1, 1)):
        b = gammas.shape[0]
        y_0 = torch.rand(b, 3, 4, 4, generator=g) * 2 - 1
        noise = torch.randn(b, 3, 4, 4, generator=g)
        cases.append(((y_0, gammas, noise), {}))
    return cases


def _mistake_q_swapped(y_0, sample_gammas, noise=None):
    noise = noise if noise is not None else torch.randn_like(y_0)
    return (1 - sample_gammas).sqrt() * y_0 + sample_gammas.sqrt() * noise


def _mistake_q_no_sqrt(y_0, sample_gammas, noise=None):
    noise = noise if noise is not None else torch.randn_like(y_0)
    return sample_gammas * y_0 + (1 - sample_gammas) * noise


def _mistake_q_own_noise(y_0, sample_gammas, noise=None):
    return sample_gammas.sqrt() * y_0 + (1 - sample_gammas).sqrt() * torch.randn_like(y_0)


def _mistake_q_std_sum(y_0, sample_gammas, noise=None):
    noise = noise if noise is not None else torch.randn_like(y_0)
    return sample_gammas.sqrt() * y_0 + (1 - sample_gammas.sqrt()) * noise


@register("q_sample", NOTEBOOK, q_sample, mistakes=[
    (_mistake_q_swapped, "multiplies the image"),
    (_mistake_q_no_sqrt, "square roots"),
    (_mistake_q_own_noise, "the noise you are given"),
    (_mistake_q_std_sum, "variances"),
])
def check_q_sample(student: Callable, quiet: bool = False) -> Callable:
    """Check ``q_sample(y_0, sample_gammas, noise)``: y_t = sqrt(gamma) y_0 + sqrt(1 - gamma) noise."""

    def other_noise(g, w, a, k):
        y_0, gam, noise = a
        resid = (g - gam.sqrt() * y_0) / (1 - gam).sqrt()
        return torch.is_tensor(g) and g.shape == w.shape and not torch.allclose(resid, noise, atol=1e-4) and 0.5 < float(resid.std()) < 1.5

    hints = [
        (same_as(lambda y, c, n: (1 - c).sqrt() * y + c.sqrt() * n),
         "look at which factor multiplies the image: with gamma close to 1 (hardly any noise yet) y_t must be close to y_0 "
         "(the theory report swaps the two, erratum 11)."),
        (same_as(lambda y, c, n: c * y + (1 - c) * n),
         "q(y_t | y_0) has mean sqrt(gamma) y_0 and variance 1 - gamma: the factors are square roots."),
        (same_as(lambda y, c, n: c.sqrt() * y + (1 - c.sqrt()) * n),
         "the noise factor: variances add up (gamma + (1 - gamma) = 1), standard deviations do not."),
        (other_noise, "use the noise you are given (draw your own only when noise is None), so the check can compare."),
    ]
    fn, _ = check_function("q_sample", student, q_sample, _q_cases(), hints, quiet=quiet)
    return fn


# ---------------------------------------------------------------------------------------- posterior
def _posterior_cases() -> list:
    g = np.random.default_rng(6)
    return [
        ((make_beta_schedule("linear", 20, 1e-4, 0.09),), {}),
        ((make_beta_schedule("linear", 1000, 1e-4, 0.02),), {}),
        ((make_beta_schedule("cosine", 50),), {}),
        ((np.sort(g.uniform(1e-3, 0.2, 9)),), {}),
    ]


def _gp(betas):
    gammas = np.cumprod(1.0 - betas)
    return gammas, np.append(1.0, gammas[:-1])


def _mistake_post_no_beta(betas):
    var, c1, c2 = posterior_coefficients(betas)
    return var / betas, c1, c2


def _mistake_post_inverted(betas):
    gammas, prev = _gp(betas)
    _, c1, c2 = posterior_coefficients(betas)
    with np.errstate(divide="ignore"):
        return betas * (1.0 - gammas) / (1.0 - prev), c1, c2


def _mistake_post_coef1_gamma_t(betas):
    gammas, prev = _gp(betas)
    var, _, c2 = posterior_coefficients(betas)
    return var, betas * np.sqrt(gammas) / (1.0 - gammas), c2


def _mistake_post_prev_zero(betas):
    gammas = np.cumprod(1.0 - betas)
    prev = np.append(0.0, gammas[:-1])
    return (betas * (1.0 - prev) / (1.0 - gammas), betas * np.sqrt(prev) / (1.0 - gammas),
            (1.0 - prev) * np.sqrt(1.0 - betas) / (1.0 - gammas))


def _mistake_post_not_shifted(betas):
    gammas = np.cumprod(1.0 - betas)
    return (betas * (1.0 - gammas) / (1.0 - gammas), betas * np.sqrt(gammas) / (1.0 - gammas),
            (1.0 - gammas) * np.sqrt(1.0 - betas) / (1.0 - gammas))


def _mistake_post_coef2_no_sqrt(betas):
    gammas, prev = _gp(betas)
    var, c1, _ = posterior_coefficients(betas)
    return var, c1, (1.0 - prev) * (1.0 - betas) / (1.0 - gammas)


@register("posterior_coefficients", NOTEBOOK, posterior_coefficients, mistakes=[
    (_mistake_post_prev_zero, "before the first step"),
    (_mistake_post_no_beta, "quiz question 6"),
    (_mistake_post_inverted, "upside down"),
    (_mistake_post_coef1_gamma_t, "coef1"),
    (_mistake_post_coef2_no_sqrt, "coef2"),
    (_mistake_post_not_shifted, "one step earlier"),
])
def check_posterior_coefficients(student: Callable, quiet: bool = False) -> Callable:
    """Check ``posterior_coefficients(betas) -> (posterior_variance, coef1, coef2)``."""

    def item(i):
        return lambda g, w, a, k: isinstance(g, (tuple, list)) and len(g) == 3 and not _close(g[i], w[i])

    def first_step_only(g, w, a, k):
        return (isinstance(g, (tuple, list)) and len(g) == 3 and not _close(np.asarray(g[0])[:1], w[0][:1])
                and _close(np.asarray(g[0])[1:], w[0][1:]))

    def ratio_of(formula, i=0):
        def pred(g, w, a, k):
            betas = a[0]
            gammas, prev = _gp(betas)
            with np.errstate(divide="ignore", invalid="ignore"):
                want = formula(betas, gammas, prev)
            return isinstance(g, (tuple, list)) and len(g) == 3 and _close(np.asarray(g[i])[1:], want[1:])
        return pred

    hints = [
        (lambda g, w, a, k: not isinstance(g, (tuple, list)) or len(g) != 3,
         "return a tuple of three arrays: (posterior_variance, posterior_mean_coef1, posterior_mean_coef2)."),
        (first_step_only, "gamma_{t-1} before the first step is 1 (nothing is noised yet): start gammas_prev with 1.0."),
        (ratio_of(lambda b, g, p: (1 - p) / (1 - g)),
         "your posterior_variance is missing a factor: compare it term by term with the docstring (the course quiz question 6, answer c)."),
        (ratio_of(lambda b, g, p: b * (1 - g) / (1 - g)),
         "gammas_prev is gamma_{t-1}, the level one step earlier: gammas shifted right by one place, starting with 1.0."),
        (ratio_of(lambda b, g, p: b * (1 - g) / (1 - p)),
         "your variance ratio is upside down: beta~_t is smaller than beta_t, never larger."),
        (item(0), "posterior_variance differs: compare it term by term with beta~_t in the docstring."),
        (item(1), "coef1 multiplies y_0: it uses sqrt(gamma_{t-1}), the level before the step, not gamma_t."),
        (item(2), "coef2 multiplies y_t: it uses sqrt(alpha_t) = sqrt(1 - beta_t), a square root."),
    ]
    fn, _ = check_function("posterior_coefficients", student, posterior_coefficients, _posterior_cases(), hints,
                           atol=1e-8, rtol=1e-6, quiet=quiet)
    return fn


# ---------------------------------------------------------------------------------------- DDIM
def _ddim_cases() -> list:
    g = seeded(8)
    gam = schedule_quantities(make_beta_schedule("linear", 20, 1e-4, 0.09))["gammas"]
    cases = []
    for gamma_t, gamma_prev, kw in [
        (gam[19], gam[14], {"clip_denoised": False}),
        (gam[10], gam[5], {}),
        (gam[0], 1.0, {}),
        (gam[14], gam[10], {"eta": 1.0, "clip_denoised": False}),
        (gam[5], gam[0], {"eta": 0.5}),
    ]:
        y_t = torch.randn(2, 3, 4, 4, generator=g)
        noise_pred = torch.randn(2, 3, 4, 4, generator=g)
        if kw.get("eta"):
            kw = {**kw, "generator": torch.Generator().manual_seed(11)}
        cases.append(((noise_pred, y_t, float(gamma_t), float(gamma_prev)), kw))
    return cases


def _as_pair(fn: Callable) -> Callable:
    def run(*args, **kwargs):
        out = fn(*args, **kwargs)
        if hasattr(out, "prev_sample") and hasattr(out, "pred_original_sample"):
            return (out.prev_sample, out.pred_original_sample)
        return out
    run.__name__ = getattr(fn, "__name__", "ddim_step")
    return run


def _ddim_variant(y0_scale: bool = True, clip: bool = True, rederive: bool = True, sigma_full: bool = True):
    from ..samplers import StepOutput

    def step(noise_pred, y_t, gamma_t, gamma_prev, eta=0.0, clip_denoised=True, generator=None):
        y_0_hat = y_t - math.sqrt(1.0 - gamma_t) * noise_pred
        if y0_scale:
            y_0_hat = y_0_hat / math.sqrt(gamma_t)
        if clip and clip_denoised:
            y_0_hat = y_0_hat.clamp(-1.0, 1.0)
            if rederive:
                noise_pred = (y_t - math.sqrt(gamma_t) * y_0_hat) / math.sqrt(1.0 - gamma_t)
        sigma = eta * math.sqrt(1.0 - gamma_t / gamma_prev)
        if sigma_full:
            sigma *= math.sqrt((1.0 - gamma_prev) / (1.0 - gamma_t))
        prev = math.sqrt(gamma_prev) * y_0_hat + math.sqrt(max(1.0 - gamma_prev - sigma**2, 0.0)) * noise_pred
        if sigma > 0:
            prev = prev + sigma * torch.randn(y_t.shape, generator=generator, dtype=y_t.dtype)
        return StepOutput(prev_sample=prev, pred_original_sample=y_0_hat)

    return step


_mistake_ddim_no_scale = _ddim_variant(y0_scale=False)
_mistake_ddim_no_clip = _ddim_variant(clip=False)
_mistake_ddim_no_rederive = _ddim_variant(rederive=False)
_mistake_ddim_sigma = _ddim_variant(sigma_full=False)


def _mistake_ddim_tensor(noise_pred, y_t, gamma_t, gamma_prev, eta=0.0, clip_denoised=True, generator=None):
    return ddim_step(noise_pred, y_t, gamma_t, gamma_prev, eta, clip_denoised, generator).prev_sample


@register("ddim_step", NOTEBOOK, ddim_step, mistakes=[
    (_mistake_ddim_tensor, "StepOutput"),
    (_mistake_ddim_no_scale, "pred_original_sample"),
    (_mistake_ddim_no_clip, "clip_denoised"),
    (_mistake_ddim_no_rederive, "recompute the noise"),
    (_mistake_ddim_sigma, "sigma"),
])
def check_ddim_step(student: Callable, quiet: bool = False) -> Callable:
    """Check ``ddim_step(noise_pred, y_t, gamma_t, gamma_prev, eta, clip_denoised, generator) -> StepOutput``."""

    def pair(g):
        return isinstance(g, tuple) and len(g) == 2

    hints = [
        (lambda g, w, a, k: not pair(g),
         "return StepOutput(prev_sample=..., pred_original_sample=...) (from ddpm_lab.samplers)."),
        (lambda g, w, a, k: not torch.allclose(g[1], w[1], atol=1e-5) and k.get("clip_denoised", True) and float(g[1].abs().max()) > 1.0,
         "clip_denoised=True: clamp y_0_hat to [-1, 1], the range of real images."),
        (lambda g, w, a, k: not torch.allclose(g[1], w[1], atol=1e-5),
         "pred_original_sample: solve y_t = sqrt(gamma_t) y_0 + sqrt(1 - gamma_t) eps for y_0."),
        (lambda g, w, a, k: k.get("clip_denoised", True) and not k.get("eta"),
         "after clipping y_0_hat, recompute the noise from y_t and the clipped y_0_hat, then use that noise in the step."),
        (lambda g, w, a, k: bool(k.get("eta")),
         "with eta > 0: check sigma (both square-root factors), the direction term sqrt(1 - gamma_prev - sigma^2) eps, "
         "and draw z with torch.randn(y_t.shape, generator=generator)."),
        (lambda g, w, a, k: True, "y_prev = sqrt(gamma_prev) y_0_hat + sqrt(1 - gamma_prev - sigma^2) eps (+ sigma z)."),
    ]
    _, result = check_function("ddim_step", _as_pair(student), _as_pair(ddim_step), _ddim_cases(), hints, quiet=quiet)
    return student if result.passed else ddim_step
