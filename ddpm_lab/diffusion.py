"""Palette-style Gaussian diffusion for inpainting: the course's ``InpaintingGaussianDiffusion``.

The diffusion is handed its network (any module ``f(x, gammas) -> noise`` with
``x = cat([y_cond, y_t], dim=1)``) and owns the schedule; the samplers that run the reverse process
live in :mod:`ddpm_lab.samplers`.

Differences from the printed course code, all deliberate:

- no global ``device``: every index lookup follows the tensors (erratum 2);
- the schedule buffers exist right after ``__init__`` (on the CPU), so the model works before
  ``set_new_noise_schedule(device)`` is called; calling it again rebuilds them on ``device``;
- ``beta_schedule`` may hold separate ``"train"`` and ``"test"`` schedules as in Palette, because the
  network sees the noise level gamma, not the step index t;
- every random draw accepts a ``torch.Generator``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from .losses import mse_loss
from .schedules import extract, make_beta_schedule, schedule_quantities

# Palette registers exactly these six float32 buffers, in this order.
BUFFER_NAMES = (
    "gammas",
    "sqrt_recip_gammas",
    "sqrt_recipm1_gammas",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, I) noise shaped like ``x``, drawn from ``generator`` (on its own device) if given."""
    if generator is None:
        return torch.randn_like(x)
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return noise.to(x.device)


def _rand(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) samples of ``shape`` on ``like``'s device and dtype."""
    device = like.device if generator is None else generator.device
    return torch.rand(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def q_sample(y_0: Tensor, sample_gammas: Tensor, noise: Tensor | None = None) -> Tensor:
    """Forward process in closed form: y_t = sqrt(gamma) * y_0 + sqrt(1 - gamma) * noise.

    One draw from q(y_t | y_0) = N(sqrt(gamma_t) y_0, (1 - gamma_t) I), the same distribution as
    running y_s = sqrt(1 - beta_s) y_{s-1} + sqrt(beta_s) eps_s for s = 1..t.

    :param y_0: clean images (B, C, H, W).
    :param sample_gammas: noise levels gamma in (0, 1], broadcastable to y_0, e.g. (B, 1, 1, 1).
    :param noise: eps ~ N(0, I) like y_0 (drawn if None).
    :return: y_t, like y_0.
    """
    noise = noise if noise is not None else torch.randn_like(y_0)
    return sample_gammas.sqrt() * y_0 + (1 - sample_gammas).sqrt() * noise


class InpaintingGaussianDiffusion(nn.Module):
    """The inpainting diffusion model of the course (Palette's ``Network``).

    :param unet_config: either a dict of :class:`~ddpm_lab.unet.UNet` keyword arguments (the course:
        ``InpaintingGaussianDiffusion(unet_config, beta_schedule)``) or an already built network
        module, e.g. :class:`~ddpm_lab.simple_unet.SimpleUnet`. It is stored at ``.denoise_fn``.
    :param beta_schedule: ``make_beta_schedule`` keyword arguments, e.g. the course's
        ``{"schedule": "linear", "n_timestep": 20, "linear_start": 1e-4, "linear_end": 0.09}``, or
        Palette's ``{"train": {...}, "test": {...}}`` with one such dict per phase.
    """

    def __init__(self, unet_config: Mapping[str, Any] | nn.Module, beta_schedule: Mapping[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(unet_config, nn.Module):
            self.denoise_fn = unet_config
        elif isinstance(unet_config, Mapping):
            from .unet import UNet

            self.denoise_fn = UNet(**unet_config)
        else:
            raise ValueError("unet_config must be a dict of UNet arguments or an nn.Module network")
        self.beta_schedule = self._check_schedule_config(beta_schedule)
        self.loss_fn: Callable[[Tensor, Tensor], Tensor] = mse_loss
        self.set_new_noise_schedule(torch.device("cpu"), phase="train")

    # ------------------------------------------------------------------ schedule
    @staticmethod
    def _check_schedule_config(beta_schedule: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        if not isinstance(beta_schedule, Mapping):
            raise ValueError("beta_schedule must be a dict, e.g. {'schedule': 'linear', 'n_timestep': 20, ...}")
        if "train" in beta_schedule or "test" in beta_schedule:
            phases = {k: dict(v) for k, v in beta_schedule.items()}
            phases.setdefault("test", phases.get("train"))
            phases.setdefault("train", phases["test"])
        else:
            phases = {"train": dict(beta_schedule), "test": dict(beta_schedule)}
        for phase, cfg in phases.items():
            try:
                make_beta_schedule(**cfg)
            except TypeError as err:
                raise ValueError(f"beta_schedule[{phase!r}] = {cfg}: {err}") from None
        return phases

    def set_new_noise_schedule(self, device: torch.device | str | None = None, phase: str = "train") -> None:
        """(Re)build the six schedule buffers for ``phase`` on ``device``.

        gammas_t = prod_{s<=t} (1 - beta_s); see :func:`~ddpm_lab.schedules.schedule_quantities` for
        the other five. Values are computed in float64 and stored as float32, as in Palette.

        :param device: where the buffers live (default: where the network's parameters are).
        :param phase: ``"train"`` or ``"test"`` (Palette samples on a different schedule).
        """
        if phase not in self.beta_schedule:
            raise ValueError(f"phase must be one of {sorted(self.beta_schedule)}, got {phase!r}")
        if device is None:
            device = next(self.denoise_fn.parameters()).device
        betas = make_beta_schedule(**self.beta_schedule[phase])
        self.schedule = schedule_quantities(betas)  # float64 numpy, for samplers and teaching
        self.phase = phase
        self.num_timesteps = int(betas.shape[0])
        for name in BUFFER_NAMES:
            self.register_buffer(name, torch.tensor(self.schedule[name], dtype=torch.float32, device=device))

    def set_loss(self, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        """Use ``loss_fn(target, prediction)`` for training (default: :func:`~ddpm_lab.losses.mse_loss`)."""
        self.loss_fn = loss_fn

    # ------------------------------------------------------------------ the maths
    def q_sample(self, y_0: Tensor, sample_gammas: Tensor, noise: Tensor | None = None) -> Tensor:
        """Forward process in closed form, :func:`q_sample`: y_t = sqrt(gamma) y_0 + sqrt(1 - gamma) noise."""
        return q_sample(y_0, sample_gammas, noise)

    def predict_start_from_noise(self, y_t: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Invert the forward process: y_0 = sqrt(1/gamma_t) * y_t - sqrt(1/gamma_t - 1) * noise.

        :param t: step indices (B,).
        """
        return (
            extract(self.sqrt_recip_gammas, t, y_t.shape) * y_t
            - extract(self.sqrt_recipm1_gammas, t, y_t.shape) * noise
        )

    def q_posterior(self, y_0_hat: Tensor, y_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and clipped log-variance of q(y_{t-1} | y_t, y_0):
        mean = coef1_t * y_0 + coef2_t * y_t, log(beta~_t) with beta~_t = beta_t (1-gamma_{t-1})/(1-gamma_t).
        """
        mean = (
            extract(self.posterior_mean_coef1, t, y_t.shape) * y_0_hat
            + extract(self.posterior_mean_coef2, t, y_t.shape) * y_t
        )
        return mean, extract(self.posterior_log_variance_clipped, t, y_t.shape)

    def predict_noise(self, y_t: Tensor, gammas: Tensor, y_cond: Tensor | None = None) -> Tensor:
        """The network's noise estimate eps_theta(cat[y_cond, y_t], gamma); ``gammas`` has B elements."""
        x = y_t if y_cond is None else torch.cat([y_cond, y_t], dim=1)  # (B, 2C, H, W)
        return self.denoise_fn(x, gammas.reshape(y_t.shape[0], 1))

    def p_mean_variance(
        self, y_t: Tensor, t: Tensor, clip_denoised: bool = True, y_cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of p_theta(y_{t-1} | y_t): the posterior q(y_{t-1} | y_t, y_0_hat)
        with y_0_hat predicted from the network's noise estimate at noise level gamma_t."""
        noise_level = extract(self.gammas, t, (1, 1))  # (B, 1)
        y_0_hat = self.predict_start_from_noise(y_t, t, self.predict_noise(y_t, noise_level, y_cond))
        if clip_denoised:
            y_0_hat = y_0_hat.clamp(-1.0, 1.0)
        return self.q_posterior(y_0_hat, y_t, t)

    @torch.no_grad()
    def p_sample(
        self,
        y_t: Tensor,
        t: Tensor,
        clip_denoised: bool = True,
        y_cond: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One ancestral step: y_{t-1} = mean + exp(log_var / 2) * z, z ~ N(0, I), and z = 0 at t = 0."""
        mean, log_var = self.p_mean_variance(y_t, t, clip_denoised=clip_denoised, y_cond=y_cond)
        nonzero = (t > 0).to(y_t.dtype).reshape(-1, *((1,) * (y_t.dim() - 1)))  # (B, 1, 1, 1)
        return mean + nonzero * (0.5 * log_var).exp() * _randn_like(y_t, generator)

    @torch.no_grad()
    def restoration(
        self,
        y_cond: Tensor,
        y_t: Tensor | None = None,
        y_0: Tensor | None = None,
        mask: Tensor | None = None,
        sample_num: int = 8,
        sampler: str = "ddpm",
        steps: int | None = None,
        eta: float = 0.0,
        jump_length: int = 10,
        jump_n_sample: int = 10,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Inpaint: run the reverse process and keep the known region, y = y_0 (1-mask) + mask y_t.

        The course's entry point; see :func:`ddpm_lab.samplers.sample` for the samplers
        (``"ddpm"``, ``"ddim"``, ``"repaint"``) and their arguments.

        :param y_cond: the condition image (B, C, H, W): known pixels, noise in the hole.
        :param y_t: where to start (default pure noise). With the course's 20-step schedule
            gamma_T is about 0.39, so pure noise is *not* what the network saw at the last step.
        :param y_0: the image whose known region is pasted back (needed when ``mask`` is given).
        :param mask: (B, 1, H, W), 1 = hole.
        :return: ``(output, visuals)``: the result (B, C, H, W) and the start plus ``sample_num``
            intermediate frames stacked along the batch dimension, as in the course.
        """
        from .samplers import sample

        out = sample(
            self, y_cond, y_t=y_t, y_0=y_0, mask=mask, sampler=sampler, steps=steps, eta=eta,
            jump_length=jump_length, jump_n_sample=jump_n_sample, sample_num=sample_num,
            generator=generator, progress=progress,
        )
        return out.sample, torch.cat(out.frames, dim=0)

    # ------------------------------------------------------------------ training
    def sample_noise_levels(self, batch_size: int, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Palette's p(gamma): t ~ U{1, ..., T-1}, then gamma ~ U(gamma_t, gamma_{t-1}).  -> (B, 1)"""
        if self.num_timesteps < 2:
            raise ValueError("training needs a schedule with at least 2 steps")
        u_t = _rand((batch_size,), like, generator)
        t = 1 + (u_t * (self.num_timesteps - 1)).long()  # (B,) in [1, T-1]
        gamma_prev = extract(self.gammas, t - 1, (1, 1))  # (B, 1)
        gamma_t = extract(self.gammas, t, (1, 1))
        return gamma_prev + (gamma_t - gamma_prev) * _rand((batch_size, 1), like, generator)

    def forward(
        self,
        y_0: Tensor,
        y_cond: Tensor | None = None,
        mask: Tensor | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Training loss: noise y_0 to a random level, keep the known region clean, predict the noise.

        y_noisy = sqrt(gamma) y_0 + sqrt(1-gamma) eps; input y_in = mask * y_noisy + (1-mask) * y_0;
        loss = loss_fn(mask * eps, mask * eps_theta(cat[y_cond, y_in], gamma)).

        :param y_0: ground truth (B, C, H, W); ``y_cond`` the condition; ``mask`` (B, 1, H, W), 1 = hole.
        :return: the scalar loss.
        """
        b = y_0.shape[0]
        sample_gammas = self.sample_noise_levels(b, y_0, generator)  # (B, 1)
        noise = noise if noise is not None else _randn_like(y_0, generator)
        y_noisy = self.q_sample(y_0, sample_gammas.view(b, 1, 1, 1), noise)
        if mask is not None:
            noise_hat = self.predict_noise(y_noisy * mask + (1.0 - mask) * y_0, sample_gammas, y_cond)
            return self.loss_fn(mask * noise, mask * noise_hat)
        noise_hat = self.predict_noise(y_noisy, sample_gammas, y_cond)
        return self.loss_fn(noise, noise_hat)
