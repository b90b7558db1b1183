"""Check cells for the student notebooks (see :mod:`ddpm_lab.checks.core` for how they work).

Usage in a notebook, right after a TODO cell::

    from ddpm_lab import checks
    bbox2mask = checks.check_bbox2mask(bbox2mask)

Each ``check_*`` prints a verdict with a hint and returns the function to use from then on.
"""

from __future__ import annotations

import importlib

from .core import EXERCISES, CheckResult, Exercise, check_function

# one module per notebook topic; importing them fills EXERCISES
_MODULES = ("data", "unets", "diffusion", "training", "inference")


def _load_all() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{mod}":
                raise


_load_all()


def __getattr__(name: str):
    for exercise in EXERCISES.values():
        if exercise.check.__name__ == name:
            return exercise.check
    raise AttributeError(f"ddpm_lab.checks has no check {name!r}; available: {sorted(e.check.__name__ for e in EXERCISES.values())}")


__all__ = ["EXERCISES", "CheckResult", "Exercise", "check_function"]
