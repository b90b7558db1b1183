#!/usr/bin/env python3
"""Execute notebooks in place and keep their outputs (how the committed solutions get their figures).

    DDPM_LAB_PROFILE=cpu python tools/run_notebooks.py solutions/*.ipynb

Prints each notebook's wall time. Student notebooks are committed without outputs: regenerate them
with tools/make_student_notebooks.py afterwards (outputs do not affect them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import nbformat
from nbclient import NotebookClient


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = ap.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for path in args.paths:
        nb = nbformat.read(path, as_version=4)
        start = time.time()
        NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                       resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
        nbformat.write(nb, path)
        print(f"{path}: {time.time() - start:.1f} s (profile {os.environ.get('DDPM_LAB_PROFILE', 'default')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
