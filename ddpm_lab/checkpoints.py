"""Trainer checkpoints: atomic writes, random-number-generator states, safe reading.

A checkpoint (``last.ckpt``) is a dict that ``torch.load(weights_only=True)`` can read back, so it
holds only tensors, numbers, strings, lists, dicts and None::

    {"format": "ddpm_lab-checkpoint", "model": state_dict, "ema": state_dict | None,
     "optimizer": ..., "scaler": ... | None, "step": int, "epoch": int, "step_in_epoch": int,
     "rng": rng_state, "epoch_rng": rng_state, "history": dict, "best_mae": float, "config": dict}

``rng`` is the state right after the last step; ``epoch_rng`` the state when the epoch began (to
replay the epoch's shuffling when resuming in the middle of an epoch).
Files are written atomically: to a temporary file in the same folder, flushed and fsync'ed, then
``os.replace``'d over the target, so an interrupted write never damages the previous file.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .weights import CHECKPOINT_FORMAT, _read


def _fsync_dir(folder: Path) -> None:
    """Persist a rename on POSIX file systems (best effort: not every system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str | os.PathLike, write) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)
    return target


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``.

    If anything fails (disk full, Colab disconnect, an exception in ``torch.save``) the temp file is
    removed and a previous file at ``path`` is left exactly as it was.

    :return: the path written.
    """
    return _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, like :func:`atomic_save`."""
    return _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def capture_rng_state(loader_generator: torch.Generator | None = None) -> dict:
    """Every random state training depends on, as tensors/ints/lists (``weights_only``-loadable).

    :param loader_generator: the train DataLoader's ``generator`` (shuffling, worker seeds), if any.
    :return: ``{"torch", "cuda", "numpy", "python", "loader"}``.
    """
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss_next": py_gauss},
        "loader": None if loader_generator is None else loader_generator.get_state(),
    }


def restore_rng_state(state: Mapping, loader_generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng_state`: set the global torch/CUDA/numpy/python RNGs (and the
    loader's generator when both it and a saved state exist)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = list(state.get("cuda") or [])
    if cuda_states and torch.cuda.is_available():
        for index, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(npy["pos"]), int(npy["has_gauss"]), float(npy["cached_gaussian"])))
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    if loader_generator is not None and state.get("loader") is not None:
        loader_generator.set_state(state["loader"].cpu())


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy and torch (CPU and every CUDA device) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def all_finite(*modules: nn.Module | None) -> bool:
    """True when every parameter and floating buffer of the given modules is finite (no NaN/Inf)."""
    for module in modules:
        if module is None:
            continue
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return False
    return True


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a trainer checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    :raises FileNotFoundError: no file at ``path``.
    :raises ValueError: unreadable/corrupt file, or not a ``ddpm_lab-checkpoint`` (e.g. a plain
        ``best_model.pth``, which holds weights only: load it with ``load_weights`` instead).
    """
    state = _read(path)
    if state.get("format") != CHECKPOINT_FORMAT or "optimizer" not in state:
        raise ValueError(
            f"{os.fspath(path)!r} is not a resumable trainer checkpoint (no {CHECKPOINT_FORMAT!r} format "
            "with optimizer state); to start from its weights, load them with ddpm_lab.load_weights "
            "and train without resume"
        )
    return dict(state)
