"""Load weights from every format the course meets, always with ``torch.load(weights_only=True)``.

=====================  ==========================================================================
format                 what it looks like
=====================  ==========================================================================
``ddpm_lab-checkpoint`` our trainer's checkpoint: a dict with ``"model"`` (and ``"ema"``) state_dicts
``network``            a whole-model state_dict: ``denoise_fn.*`` plus the six schedule buffers
                       (our ``best_model.pth``, the course's, Palette's ``{epoch}_Network.pth``)
``network-ema``        ``denoise_fn.*`` only (Palette's ``{epoch}_Network_ema.pth``)
``unet``               a bare network state_dict (``input_blocks.*``, ``conv0.*``, ...)
=====================  ==========================================================================

The schedule buffers in a checkpoint are never loaded: the schedule is configuration (Palette saves
its 2000-step *training* schedule), so the model keeps the one it was built with.
Erratum 12: the course's plain ``torch.load`` unpickles arbitrary code; this never does.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .diffusion import BUFFER_NAMES

CHECKPOINT_FORMAT = "ddpm_lab-checkpoint"
_PREFIX = "denoise_fn."


@dataclass
class WeightsReport:
    """What :func:`load_weights` did: the format it recognised and the keys it skipped."""

    format: str
    loaded: int
    ignored: list[str] = field(default_factory=list)  # schedule buffers found in the file and not loaded


def _read(path: str | os.PathLike) -> Mapping:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {os.fspath(path)!r}: check the path (on Colab, is Drive mounted?)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = [line.strip() for line in str(err).splitlines() if "Unsupported global" in line]
        if not found:
            raise ValueError(f"{os.fspath(path)!r} is not a readable PyTorch file (truncated or corrupt?)") from None
        raise ValueError(
            f"{os.fspath(path)!r} holds pickled Python objects, not just tensors ({found[0]}), so it was "
            f"not loaded (weights_only=True). Re-save it as a state_dict from code you trust."
        ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"{os.fspath(path)!r} is not a readable PyTorch file (truncated or corrupt?): {err}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{os.fspath(path)!r} holds a {type(obj).__name__}, not a state_dict or checkpoint dict")
    return obj


def detect_format(state: Mapping) -> str:
    """Name the checkpoint format of ``state`` (see the module table), or ``"unknown"``."""
    if state.get("format") == CHECKPOINT_FORMAT and isinstance(state.get("model"), Mapping):
        return CHECKPOINT_FORMAT
    keys = [k for k in state if isinstance(k, str)]
    if not keys or not all(torch.is_tensor(state[k]) for k in keys):
        return "unknown"
    if any(k.startswith(_PREFIX) for k in keys):
        return "network" if any(k in BUFFER_NAMES for k in keys) else "network-ema"
    if any(k.startswith("module.") for k in keys):
        return "ddp"
    return "unet"


def _strip(state: Mapping, prefix: str) -> dict:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def load_weights(
    model: nn.Module, path_or_state_dict: str | os.PathLike | Mapping, use_ema: bool = True, strict: bool = True
) -> WeightsReport:
    """Load weights into ``model`` (an ``InpaintingGaussianDiffusion`` or a bare network).

    :param model: the target; for a diffusion model the weights go into ``model.denoise_fn``.
    :param path_or_state_dict: a file path, or an already loaded dict.
    :param use_ema: for our trainer's checkpoints, load the EMA weights when the file has them.
    :param strict: require every network key to match (missing or unexpected keys raise).
    :return: a :class:`WeightsReport`.
    :raises FileNotFoundError: the path does not exist.
    :raises ValueError: unreadable file, unknown format, or keys/shapes that do not fit ``model``;
        the message names the format it saw and the missing/unexpected keys.
    """
    state = _read(path_or_state_dict) if isinstance(path_or_state_dict, (str, os.PathLike)) else path_or_state_dict
    fmt = detect_format(state)
    if fmt == CHECKPOINT_FORMAT:
        inner = state["ema"] if use_ema and isinstance(state.get("ema"), Mapping) else state["model"]
        report = load_weights(model, inner, use_ema=use_ema, strict=strict)
        report.format = CHECKPOINT_FORMAT + (" (ema)" if inner is state.get("ema") else "")
        return report
    if fmt == "unknown":
        sample = ", ".join(map(str, list(state)[:6]))
        raise ValueError(
            f"unrecognised checkpoint: expected a state_dict of tensors or a {CHECKPOINT_FORMAT} dict; "
            f"saw keys [{sample}{', ...' if len(state) > 6 else ''}]"
        )
    net_state = _strip(state, "module.") if fmt == "ddp" else dict(state)
    ignored = sorted(k for k in net_state if k in BUFFER_NAMES)
    net_state = {k: v for k, v in net_state.items() if k not in BUFFER_NAMES}
    net_state = _strip(net_state, _PREFIX)
    target = getattr(model, "denoise_fn", model)
    try:
        result = target.load_state_dict(net_state, strict=strict)
    except RuntimeError as err:
        expected = set(target.state_dict())
        missing = sorted(expected - set(net_state))
        unexpected = sorted(set(net_state) - expected)
        raise ValueError(
            f"the {fmt!r} weights do not fit {type(target).__name__}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}"
            + ("" if missing or unexpected else f"; shapes differ: {str(err).splitlines()[-1].strip()}")
            + ". Build the model with the config the checkpoint was trained with."
        ) from None
    if not strict and (result.missing_keys or result.unexpected_keys):
        ignored += list(result.unexpected_keys)
    return WeightsReport(format=fmt if fmt != "ddp" else "unet (DistributedDataParallel 'module.' prefix)",
                         loaded=len(net_state), ignored=ignored)
