"""The machinery behind the notebooks' check cells.

A check compares a student's function (or class) with the ``ddpm_lab`` reference on seeded random
inputs and prints one of three verdicts:

- ``[not done yet]`` the function still raises ``NotImplementedError`` (the generated stub);
- ``[try again]``    it raised, or its output differs; a hint says what to look at, never the answer;
- ``[correct]``      it agrees with the reference on every case.

It returns the function the rest of the notebook should use: the student's when it is correct,
the reference otherwise, so a student stuck on one exercise still finishes the notebook.

Every check registers an :class:`Exercise` with known mistakes; ``tests/test_checks.py`` proves
that each check rejects the stub and every mistake, and accepts the reference.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch

Case = tuple[tuple, dict]  # (args, kwargs)
Hint = tuple[Callable[..., bool], str]  # (predicate(student_out, ref_out, args, kwargs), message)


@dataclass
class CheckResult:
    """The verdict of a check: ``status`` is "correct", "not done" or "wrong"."""

    name: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "correct"


@dataclass
class Exercise:
    """A registered TODO: its check, its reference and mistakes the check must catch."""

    name: str
    notebook: str
    check: Callable[..., Any]
    reference: Any
    mistakes: list[tuple[Any, str]] = field(default_factory=list)  # (wrong implementation, hint fragment)


EXERCISES: dict[str, Exercise] = {}


def register(name: str, notebook: str, reference: Any, mistakes: Sequence[tuple[Any, str]] = ()) -> Callable:
    """Decorator: register a check function as the exercise ``name`` of ``notebook``."""

    def wrap(check: Callable) -> Callable:
        EXERCISES[name] = Exercise(name, notebook, check, reference, list(mistakes))
        check.exercise = name  # type: ignore[attr-defined]
        return check

    return wrap


def report(result: CheckResult, quiet: bool = False) -> CheckResult:
    """Print a verdict in the kit's fixed format (one line, then the hint)."""
    if not quiet:
        tag = {"correct": "[correct]", "not done": "[not done yet]", "wrong": "[try again]"}[result.status]
        print(f"{tag} {result.name}: {result.message}")
    return result


def _describe(x: Any) -> str:
    if torch.is_tensor(x):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"array of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def _as_tensor(x: Any) -> torch.Tensor | None:
    if torch.is_tensor(x):
        return x.detach()
    try:
        import numpy as np

        if isinstance(x, (np.ndarray, np.generic, float, int)):
            return torch.as_tensor(np.asarray(x))
    except Exception:  # pragma: no cover - numpy is a dependency
        pass
    return None


def compare_outputs(got: Any, want: Any, atol: float, rtol: float) -> str | None:
    """None when ``got`` matches ``want`` (recursively for tuples/lists/dicts), else what differs."""
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return f"expected a dict with keys {sorted(want)}, got {sorted(got) if isinstance(got, dict) else _describe(got)}"
        for k in want:
            problem = compare_outputs(got[k], want[k], atol, rtol)
            if problem:
                return f"[{k!r}] {problem}"
        return None
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"expected a sequence of {len(want)} items, got {_describe(got)}"
        for i, (g, w) in enumerate(zip(got, want)):
            problem = compare_outputs(g, w, atol, rtol)
            if problem:
                return f"item {i}: {problem}"
        return None
    w, g = _as_tensor(want), _as_tensor(got)
    if w is None:
        return None if got == want else f"expected {want!r}, got {got!r}"
    if g is None:
        return f"expected a {_describe(want)}, got {_describe(got)}"
    if tuple(g.shape) != tuple(w.shape):
        return f"expected shape {tuple(w.shape)}, got {tuple(g.shape)}"
    g, w = g.double().cpu(), w.double().cpu()
    if not torch.isfinite(g).all() and torch.isfinite(w).all():
        return "the output contains NaN or Inf"
    if not torch.allclose(g, w, atol=atol, rtol=rtol):
        return f"values differ (largest difference {float((g - w).abs().max()):.3g})"
    return None


def _fresh(value: Any) -> Any:
    """A copy of a case's argument, so student and reference see identical inputs (generators too)."""
    if isinstance(value, torch.Generator):
        twin = torch.Generator(device=value.device)
        twin.set_state(value.get_state())
        return twin
    if torch.is_tensor(value):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(v) for v in value)
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    return value


def check_function(
    name: str,
    student: Callable,
    reference: Callable,
    cases: Iterable[Case],
    hints: Sequence[Hint] = (),
    atol: float = 1e-5,
    rtol: float = 1e-4,
    quiet: bool = False,
) -> tuple[Callable, CheckResult]:
    """Run ``student`` and ``reference`` on every case and compare the outputs.

    :param hints: (predicate, message) pairs tried in order on the first failing case; the first
        predicate that holds gives the hint. Predicates get (student_out, reference_out, args, kwargs).
    :return: (the function to use from now on, the verdict).
    """
    cases = list(cases)
    for args, kwargs in cases:
        try:
            got = student(*_fresh(args), **_fresh(kwargs))
        except NotImplementedError:
            return reference, report(CheckResult(name, "not done", "the reference implementation is used until you finish it."), quiet)
        except Exception as err:  # noqa: BLE001 - any student error becomes a hint
            msg = raised_message(err)
            return reference, report(CheckResult(name, "wrong", msg + first_hint(hints, None, None, args, kwargs)), quiet)
        want = reference(*_fresh(args), **_fresh(kwargs))
        problem = compare_outputs(got, want, atol, rtol)
        if problem:
            return reference, report(CheckResult(name, "wrong", problem + first_hint(hints, got, want, args, kwargs)), quiet)
    return student, report(CheckResult(name, "correct", f"matches the reference on {len(cases)} test inputs."), quiet)


def same_as(mistake: Callable, atol: float = 1e-5, rtol: float = 1e-5) -> Callable[..., bool]:
    """A hint predicate: the student's output equals what ``mistake`` returns on the same inputs
    (same shape, values within atol/rtol), so the hint can name that very mistake."""

    def predicate(got: Any, want: Any, args: tuple, kwargs: dict) -> bool:
        return torch.is_tensor(got) and compare_outputs(got, mistake(*_fresh(args), **_fresh(kwargs)), atol, rtol) is None

    return predicate


def raised_message(err: Exception) -> str:
    """What a student's exception says, with the line of their code that raised it."""
    where = traceback.extract_tb(err.__traceback__)[-1]
    return f"your code raised {type(err).__name__}: {err} (line {where.lineno}: {where.line})"


def first_hint(hints: Sequence[Hint], got: Any, want: Any, args: tuple, kwargs: dict) -> str:
    """The message of the first hint whose predicate holds (formatted as a "Hint:" line), or ""."""
    for predicate, message in hints:
        try:
            if predicate(got, want, args, kwargs):
                return f"\n  Hint: {message}"
        except Exception:  # noqa: BLE001 - a hint predicate must never break the check
            continue
    return ""


def seeded(seed: int) -> torch.Generator:
    """A CPU generator for a check's random inputs (checks are reproducible)."""
    return torch.Generator().manual_seed(seed)
