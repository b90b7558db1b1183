"""One source of truth: student notebooks are generated from the solutions, never hold solution code."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import make_student_notebooks as gen  # noqa: E402

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXPECTED = ["01_data_preparation", "02_basic_unet", "03_improved_unet", "04_diffusion_math", "05_trainer", "06_inference"]


def test_generator_replaces_regions():
    src = "def f(x):\n    '''doc'''\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\nprint(f)"
    assert gen.strip_code(src, "t") == "def f(x):\n    '''doc'''\n    # TODO: your code here\n    raise NotImplementedError\nprint(f)"
    with pytest.raises(ValueError, match="never closed"):
        gen.strip_code("# BEGIN SOLUTION\nx = 1", "t")
    nb = {"cells": [
        {"cell_type": "code", "source": "# SOLUTION ONLY\nsecret()", "outputs": [1], "execution_count": 3, "metadata": {}},
        {"cell_type": "markdown", "source": "Q? <!-- BEGIN SOLUTION -->42<!-- END SOLUTION -->", "metadata": {}},
        {"cell_type": "code", "source": "x = 1", "outputs": ["out"], "execution_count": 1, "metadata": {}},
    ], "metadata": {"kernelspec": {"name": "python3"}, "widgets": {}}}
    out = gen.student_version(nb, "t")
    assert [gen._source(c) for c in out["cells"]] == ["Q? *Your answer here.*", "x = 1"]
    assert out["cells"][1]["outputs"] == [] and out["cells"][1]["execution_count"] is None
    assert out["metadata"] == {"kernelspec": {"name": "python3"}}


def test_all_six_notebooks_exist():
    assert [p.stem for p in SOLUTIONS] == EXPECTED
    assert sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")) == EXPECTED


def test_student_notebooks_are_up_to_date():
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student_notebooks.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_no_solution_code_in_student_notebook(path):
    solution = json.loads(path.read_text())
    student_text = (ROOT / "notebooks" / path.name).read_text()
    assert "BEGIN SOLUTION" not in student_text and "SOLUTION ONLY" not in student_text
    regions = []
    for cell in solution["cells"]:
        inside = False
        for line in gen._source(cell).split("\n"):
            if gen.BEGIN.match(line):
                inside = True
            elif gen.END.match(line):
                inside = False
            elif inside and len(line.strip()) > 12:
                regions.append(line.strip())
    assert regions, f"{path.name} has no TODO regions"
    student_lines = {line.strip() for c in json.loads(student_text)["cells"] for line in gen._source(c).split("\n")}
    leaked = [line for line in regions if line in student_lines]
    assert not leaked, f"solution lines leaked into notebooks/{path.name}: {leaked[:3]}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_shape(path):
    nb = json.loads(path.read_text())
    first = gen.first_code_cell(nb)
    assert gen._source(first) == gen.setup_source(), "run tools/make_student_notebooks.py --stamp"
    text = "".join(gen._source(c) for c in nb["cells"])
    todos = text.count("# BEGIN SOLUTION")
    assert 2 <= todos <= 5, f"{path.name} has {todos} TODO regions (the course wants 2 to 5)"
    assert text.count("checks.check_") >= todos, "every TODO needs a check cell"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("outputs") is not None for c in code)
    assert any(c.get("outputs") for c in code), "solutions are committed with outputs (cpu profile run)"
    assert "DDPM_LAB_PROFILE" in text or "PROFILE" in text
