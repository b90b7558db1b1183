#!/usr/bin/env python3
"""Generate the student notebooks (notebooks/) from the solved ones (solutions/): one source of truth.

Markers in the solution notebooks:

- in a code cell, the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` become, at the
  marker's indentation, ``# TODO: your code here`` and ``raise NotImplementedError`` (so regions
  live inside function bodies, and an unfinished notebook still runs: the check cell then says
  "not done yet" and falls back to the reference);
- a code cell whose first line is ``# SOLUTION ONLY`` is left out of the student notebook;
- in a Markdown cell, text between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` becomes
  ``*Your answer here.*``.

Outputs and execution counts are dropped. The first code cell of every notebook is the shared set-up
cell, ``tools/setup_cell.py`` (``--stamp`` copies it into the solutions).

    python tools/make_student_notebooks.py            # write notebooks/
    python tools/make_student_notebooks.py --check    # exit 1 if notebooks/ is stale (tests do this)
    python tools/make_student_notebooks.py --stamp    # refresh the set-up cell in solutions/ first
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS, STUDENTS = ROOT / "solutions", ROOT / "notebooks"
SETUP_CELL = ROOT / "tools" / "setup_cell.py"

BEGIN, END = re.compile(r"^(\s*)# BEGIN SOLUTION\b.*$"), re.compile(r"^\s*# END SOLUTION\b.*$")
MD_REGION = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->", re.S)
SOLUTION_ONLY = "# SOLUTION ONLY"


def setup_source() -> str:
    return SETUP_CELL.read_text().rstrip("\n")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def strip_code(source: str, where: str) -> str:
    """Replace every solution region of a code cell by a TODO stub."""
    out, inside = [], False
    for n, line in enumerate(source.split("\n"), 1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError(f"{where}, line {n}: nested # BEGIN SOLUTION")
            inside = True
            indent = begin.group(1)
            out += [f"{indent}# TODO: your code here", f"{indent}raise NotImplementedError"]
        elif END.match(line):
            if not inside:
                raise ValueError(f"{where}, line {n}: # END SOLUTION without # BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: # BEGIN SOLUTION is never closed")
    return "\n".join(out)


def student_version(nb: dict, name: str) -> dict:
    """The student notebook for the solution notebook ``nb`` (a parsed .ipynb dict)."""
    nb = copy.deepcopy(nb)
    cells = []
    for i, cell in enumerate(nb["cells"]):
        src = _source(cell)
        if cell["cell_type"] == "code":
            if src.startswith(SOLUTION_ONLY):
                continue
            src = strip_code(src, f"{name} cell {i}")
            cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown":
            src = MD_REGION.sub("*Your answer here.*", src)
        cell["source"] = _lines(src)
        cell.get("metadata", {}).pop("execution", None)
        cells.append(cell)
    nb["cells"] = cells
    meta = nb.get("metadata", {})
    nb["metadata"] = {k: v for k, v in meta.items() if k in ("kernelspec", "colab", "accelerator")}
    if "language_info" in meta:  # only the language: versions depend on who last ran the solution
        nb["metadata"]["language_info"] = {"name": meta["language_info"].get("name", "python")}
    return nb


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def first_code_cell(nb: dict) -> dict | None:
    return next((c for c in nb["cells"] if c["cell_type"] == "code"), None)


def stamp(nb: dict) -> bool:
    """Make the first code cell the shared set-up cell; True if it changed."""
    cell = first_code_cell(nb)
    if cell is None:
        raise ValueError("a course notebook needs at least one code cell (the set-up cell)")
    if _source(cell) == setup_source():
        return False
    cell["source"] = _lines(setup_source())
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report stale student notebooks, write nothing")
    ap.add_argument("--stamp", action="store_true", help="copy tools/setup_cell.py into the solutions' first code cell")
    args = ap.parse_args(argv)
    solutions = sorted(SOLUTIONS.glob("*.ipynb"))
    if not solutions:
        print(f"no solution notebooks in {SOLUTIONS}", file=sys.stderr)
        return 2
    stale = []
    for path in solutions:
        nb = json.loads(path.read_text())
        if args.stamp and stamp(nb):
            path.write_text(dumps(nb))
            print(f"stamped {path.relative_to(ROOT)}")
        text = dumps(student_version(nb, path.name))
        target = STUDENTS / path.name
        if target.exists() and target.read_text() == text:
            continue
        stale.append(target)
        if not args.check:
            STUDENTS.mkdir(exist_ok=True)
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    extra = sorted(set(p.name for p in STUDENTS.glob("*.ipynb")) - set(p.name for p in solutions))
    if args.check and (stale or extra):
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)} (run python tools/make_student_notebooks.py)")
        for name in extra:
            print(f"no solution for notebooks/{name}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
