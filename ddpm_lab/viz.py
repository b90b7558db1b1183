"""Figures for the course: images, reverse-process strips, comparison grids, loss curves, masks,
noise schedules. The only module of ``ddpm_lab`` that uses matplotlib, imported inside each function
(so ``import ddpm_lab`` stays light).

Every plotting function returns the matplotlib ``Figure`` and, given ``path``, also saves it there.
Outside a notebook, on a machine without a display, the non-interactive "Agg" backend is selected
(inside Jupyter the notebook's own backend is left alone).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def _plt():
    """``matplotlib.pyplot``, after choosing "Agg" when there is no display and no notebook."""
    import matplotlib

    headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    if headless and "ipykernel" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike | None) -> Any:
    if path is not None:
        fig.savefig(path, dpi=fig.dpi, bbox_inches="tight")
    return fig


def close_figure(fig: Any) -> None:
    """Release a figure made here (scripts that only save figures call this; notebooks need not)."""
    _plt().close(fig)


def _hwc(image: Tensor) -> np.ndarray:
    """(C, H, W) or (B, C, H, W) in [-1, 1] -> (H, W, C) float array in [0, 1] (first image of a batch)."""
    t = image.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected an image tensor (C, H, W) or (B, C, H, W) with C = 1 or 3, got {tuple(image.shape)}")
    arr = ((t.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[2] == 1 else arr


def show_tensor_image(image: Tensor, show: bool = True) -> Image.Image:
    """The course's ``show_tensor_image`` with erratum 4 fixed (it had ``Lambda(t: ...)`` and a bare
    ``else``): x in [-1, 1] -> pixel = round((x + 1) / 2 * 255), CHW -> HWC, -> PIL.

    :param image: (C, H, W) or (B, C, H, W); of a batch only the first image is used.
    :param show: also draw it with ``plt.imshow`` (axes off) in the current figure.
    :return: the PIL image (always).
    """
    from .data import to_pil

    t = image.detach()
    if t.dim() == 4:
        t = t[0]
    pil = to_pil(t)
    if show:
        plt = _plt()
        plt.imshow(pil, cmap="gray" if pil.mode == "L" else None)
        plt.axis("off")
    return pil


def _grid(rows: Sequence[tuple[str, Sequence[np.ndarray]]], col_titles: Sequence[str] | None, scale: float, title: str | None):
    plt = _plt()
    n_rows, n_cols = len(rows), max(len(images) for _, images in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(scale * n_cols + 1.2, scale * n_rows + (0.4 if title else 0)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(images[c], cmap="gray" if images[c].ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            if c == 0 and label:
                ax.set_ylabel(label, fontsize=10)
            if r == 0 and col_titles is not None and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def comparison_grid(
    rows: Mapping[str, Tensor],
    n: int | None = None,
    col_titles: Sequence[str] | None = None,
    title: str | None = None,
    scale: float = 1.4,
    path: str | os.PathLike | None = None,
):
    """A grid of images: one row per entry of ``rows`` (its key is the row label), one column per
    image of the batch, e.g. ``{"masked input": ..., "result": ..., "ground truth": ...}``.

    :param rows: label -> images (B, C, H, W) in [-1, 1] (all with the same B, or at least ``n``).
    :param n: show the first ``n`` images of each row (default: all).
    :param col_titles: optional titles above the columns.
    :param scale: inches per image.
    :param path: save the figure there.
    :return: the matplotlib Figure.
    """
    if not rows:
        raise ValueError("comparison_grid needs at least one row")
    prepared = []
    for label, images in rows.items():
        images = images[None] if images.dim() == 3 else images
        k = len(images) if n is None else min(n, len(images))
        prepared.append((label, [_hwc(images[i]) for i in range(k)]))
    return _save(_grid(prepared, col_titles, scale, title), path)


def plot_trajectory(
    frames: Sequence[Tensor],
    timesteps: Sequence[int] | None = None,
    index: int = 0,
    title: str | None = None,
    scale: float = 1.4,
    path: str | os.PathLike | None = None,
):
    """A strip of the reverse process: one frame per column, from the noisy start to the result.

    :param frames: the sampler's frames (e.g. ``InpaintResult.frames`` or ``SampleOutput.frames``),
        each (B, C, H, W) or (C, H, W), or the course's ``visuals`` tensor (N*B, C, H, W) as one item.
    :param timesteps: step index of each frame, shown as ``t = ...`` (``SampleOutput.timesteps``).
    :param index: which image of the batch to show.
    :param path: save the figure there.
    :return: the matplotlib Figure.
    """
    if torch.is_tensor(frames):
        frames = list(frames)  # the course's visuals: one image per frame
    if len(frames) == 0:
        raise ValueError("plot_trajectory needs at least one frame")
    images = [_hwc(f[index] if f.dim() == 4 else f) for f in frames]
    labels = [f"t = {t}" if t >= 0 else "t = 0 (done)" for t in timesteps] if timesteps is not None else None
    return _save(_grid([("", images)], labels, scale, title), path)


def plot_history(history: Mapping[str, Any], path: str | os.PathLike | None = None):
    """Training curves: losses on the left, validation MAE on the right.

    Understands the :class:`~ddpm_lab.trainer.Trainer` history: ``step_loss`` against ``step``
    (thin line), and the per-epoch series (``train_loss``, ``val_loss``; ``val_mae``,
    ``val_mae_hole``) against ``epoch_end_step`` when present, else against ``epoch``. Any other
    list whose name holds ``loss`` or ``mae`` is drawn against its index; ``best_*`` entries are skipped.

    :param history: ``trainer.history``, its ``history.json``, or any dict of lists.
    :param path: save the figure there.
    :return: the matplotlib Figure.
    """
    plt = _plt()
    lists = {k: list(v) for k, v in history.items()
             if isinstance(v, Sequence) and not isinstance(v, str) and v and not k.startswith("best")}
    losses = {k: v for k, v in lists.items() if "loss" in k.lower()}
    maes = {k: v for k, v in lists.items() if "mae" in k.lower()}
    if not losses and not maes:
        raise ValueError(f"history has no '*loss*' or '*mae*' series (keys: {sorted(history)})")
    per_step = "epoch_end_step" in lists or "step_loss" in lists

    def x_of(name: str, values: list) -> tuple[list, str]:
        for key in (("step",) if name == "step_loss" else ("epoch_end_step", "epoch", "step")):
            xs = lists.get(key)
            if xs is not None and len(xs) == len(values):
                return xs, "optimiser step" if key != "epoch" else "epoch"
        return list(range(1, len(values) + 1)), "optimiser step" if per_step else "epoch"

    groups = [(g, label) for g, label in ((losses, "loss"), (maes, "validation MAE")) if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.6), squeeze=False)
    for ax, (group, ylabel) in zip(axes[0], groups):
        for name, values in group.items():
            xs, xlabel = x_of(name, values)
            if name == "step_loss":
                ax.plot(xs, values, lw=0.6, alpha=0.4, label=name)
            else:
                ax.plot(xs, values, marker="o" if len(values) < 30 else None, label=name)
            ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_masks(
    masks: Tensor | None = None,
    modes: Sequence[str] | None = None,
    image_size: int = 64,
    per_mode: int = 4,
    seed: int = 0,
    path: str | os.PathLike | None = None,
):
    """Show masks (white = hole): the given ``masks`` (B, 1, H, W) in one row, or ``per_mode`` masks of
    each kind in ``modes`` (default all of :data:`~ddpm_lab.masks.MASK_MODES`), one row per kind.

    :param seed: seeds the generator for the random kinds.
    :param path: save the figure there.
    :return: the matplotlib Figure.
    """
    from .masks import MASK_MODES, make_mask

    if masks is not None:
        rows = [("masks", [m[0].float().cpu().numpy() for m in masks])]
    else:
        gen = torch.Generator().manual_seed(seed)
        rows = [(mode, [make_mask(mode, image_size, gen)[0].numpy() for _ in range(per_mode)]) for mode in (modes or MASK_MODES)]
    return _save(_grid(rows, None, 1.3, None), path)


DEFAULT_SCHEDULES: dict[str, dict[str, Any]] = {
    "course: linear T=20, 1e-4..0.09": {"schedule": "linear", "n_timestep": 20, "linear_start": 1e-4, "linear_end": 0.09},
    "slides: linear T=300, 1e-4..0.02": {"schedule": "linear", "n_timestep": 300, "linear_start": 1e-4, "linear_end": 0.02},
    "cosine T=1000": {"schedule": "cosine", "n_timestep": 1000},
    "Palette train: linear T=2000, 1e-6..0.01": {"schedule": "linear", "n_timestep": 2000, "linear_start": 1e-6, "linear_end": 0.01},
    "Palette test: linear T=1000, 1e-4..0.09": {"schedule": "linear", "n_timestep": 1000, "linear_start": 1e-4, "linear_end": 0.09},
}


def plot_schedule(schedules: Mapping[str, Mapping[str, Any]] | None = None, path: str | os.PathLike | None = None):
    """gamma_t = alphas_cumprod (left) and log SNR = log(gamma / (1 - gamma)) (right) against t / T,
    so schedules of different lengths can be compared.

    :param schedules: label -> :func:`~ddpm_lab.schedules.make_beta_schedule` arguments
        (default :data:`DEFAULT_SCHEDULES`: the course's, the slides', cosine, Palette's two).
    :param path: save the figure there.
    :return: the matplotlib Figure.
    """
    from .schedules import make_beta_schedule

    plt = _plt()
    fig, (ax_g, ax_s) = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, cfg in (schedules or DEFAULT_SCHEDULES).items():
        betas = make_beta_schedule(**cfg)
        gammas = np.cumprod(1.0 - betas)
        x = np.arange(1, len(betas) + 1) / len(betas)
        ax_g.plot(x, gammas, label=label)
        ax_s.plot(x, np.log(gammas) - np.log1p(-gammas), label=label)
    ax_g.set(xlabel="t / T", ylabel="gamma_t = alphas_cumprod", title="signal kept")
    ax_s.set(xlabel="t / T", ylabel="log SNR = log(gamma / (1 - gamma))", title="log signal-to-noise ratio")
    for ax in (ax_g, ax_s):
        ax.grid(alpha=0.3)
    ax_g.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
