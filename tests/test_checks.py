"""Every notebook check rejects the generated stub and every registered mistake, and accepts the reference."""

import pytest

from ddpm_lab import checks
from ddpm_lab.checks.core import EXERCISES


def stub(*args, **kwargs):
    raise NotImplementedError


EXERCISE_NAMES = sorted(EXERCISES)


def test_registry_is_not_empty():
    assert len(EXERCISE_NAMES) >= 1


@pytest.mark.parametrize("name", EXERCISE_NAMES)
def test_reference_passes(name, capsys):
    ex = EXERCISES[name]
    assert ex.check(ex.reference) is ex.reference
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize("name", EXERCISE_NAMES)
def test_stub_is_not_done_and_falls_back(name, capsys):
    ex = EXERCISES[name]
    assert ex.check(stub) is ex.reference
    assert "[not done yet]" in capsys.readouterr().out


@pytest.mark.parametrize("name", EXERCISE_NAMES)
def test_every_mistake_gets_its_hint(name, capsys):
    ex = EXERCISES[name]
    assert ex.mistakes, f"{name} registers no known mistakes: its check is untested"
    for wrong, fragment in ex.mistakes:
        assert ex.check(wrong) is ex.reference, f"{name} accepted the mistake {wrong.__name__}"
        out = capsys.readouterr().out
        assert "[try again]" in out and fragment in out, f"{name}/{wrong.__name__}: hint lacks {fragment!r}:\n{out}"


def test_checks_are_reachable_by_name():
    assert checks.check_bbox2mask is EXERCISES["bbox2mask"].check
    with pytest.raises(AttributeError, match="available"):
        checks.check_nothing
