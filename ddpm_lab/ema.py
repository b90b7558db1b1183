"""Exponential moving average (EMA) of a model's weights, used for validation and sampling.

After every optimiser step: ``ema = d * ema + (1 - d) * param`` for every parameter, and every
network buffer (e.g. BatchNorm statistics) is copied as is. The diffusion schedule buffers
(``gammas``, ...) are configuration, not weights, so they are never touched.

With ``warmup=True`` the decay grows with the number of updates n, ``d_n = min(decay, (1 + n) / (10 + n))``,
so a short run (a few hundred steps on a CPU) is not dominated by the random initial weights;
with ``warmup=False`` every update uses ``decay``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .diffusion import BUFFER_NAMES


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` (same device and weights), in eval mode, to hold the average.

    :param model: the model being trained (not a DistributedDataParallel wrapper).
    :return: the copy; its parameters have ``requires_grad=False``.
    """
    ema = copy.deepcopy(model)
    ema.eval()
    ema.requires_grad_(False)
    return ema


def ema_decay_at(decay: float, num_updates: int, warmup: bool = True) -> float:
    """The decay used for update number ``num_updates`` (0-based): ``min(decay, (1 + n) / (10 + n))``
    with warm-up, else ``decay``."""
    if warmup:
        return min(decay, (1.0 + num_updates) / (10.0 + num_updates))
    return decay


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """One EMA update in place: ``ema_p = decay * ema_p + (1 - decay) * p``; buffers are copied.

    :param ema: the average (from :func:`make_ema`), same architecture as ``model``.
    :param model: the trained model (unwrapped, not DDP).
    :param decay: in [0, 1]; 0 copies the weights, 1 freezes the average.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
    model_params = dict(model.named_parameters())
    for name, ema_p in ema.named_parameters():
        p = model_params[name].detach()
        ema_p.mul_(decay).add_(p.to(ema_p.dtype), alpha=1.0 - decay)
    model_buffers = dict(model.named_buffers())
    for name, ema_b in ema.named_buffers():
        if name in BUFFER_NAMES:
            continue  # the diffusion schedule: configuration, may differ by phase
        ema_b.copy_(model_buffers[name])
