"""Maintain quiz/bank.json, whose answers and explanations are hidden (salted hash, XOR key).

The readable source of the bank (with ``"answer": letter`` and plain explanations) is never
committed; a maintainer exports it to a file OUTSIDE the repository, edits it, and builds the bank
back from it:

    python tools/make_quiz_bank.py export ~/quiz_source.json   # bank -> readable source
    $EDITOR ~/quiz_source.json                                 # edit texts, answers, questions
    python tools/make_quiz_bank.py build ~/quiz_source.json    # source -> quiz/bank.json (new salts)
    python tools/make_quiz_bank.py check                       # counts per topic, one answer each

The source has the bank's layout, except that each question has ``"answer": "a"`` and each
language an ``"explanation"`` (plain text) instead of ``"salt"``, ``"answer_hash"`` and
``"explanation_enc"``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import quiz  # noqa: E402  (the repository's package, importable before installation)


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def build(source: Path, out: Path) -> dict:
    """Seal every question of a readable source into a bank file; return the bank.

    :param source: the readable source (answers in plain text).
    :param out: where the bank is written (``quiz/bank.json``).
    """
    plain = json.loads(source.read_text(encoding="utf-8"))
    bank = {key: value for key, value in plain.items() if key != "questions"}
    bank["questions"] = [quiz.seal_question(q) for q in plain["questions"]]
    tmp = out.with_name(out.name + ".tmp")
    _write(tmp, bank)
    try:
        quiz.load_bank(tmp)  # well formed, exactly one right option each, before replacing out
    except Exception:
        tmp.unlink()
        raise
    tmp.replace(out)
    return bank


def export(bank_path: Path, out: Path, force: bool = False) -> None:
    """Write the readable source of a bank (answers in plain text) to ``out``.

    :param bank_path: the bank file.
    :param out: the source file; refused inside the repository unless ``force``, so that the
        answers do not end up committed.
    """
    if ROOT in out.resolve().parents and not force:
        raise SystemExit(f"refusing to write answers inside the repository ({out}); "
                         "choose a path outside it or pass --force")
    bank = quiz.load_bank(bank_path)
    plain = {key: value for key, value in bank.items() if key != "questions"}
    plain["questions"] = [quiz.unseal_question(q) for q in bank["questions"]]
    _write(out, plain)


def check(bank_path: Path) -> None:
    """Load the bank (which checks it) and print the number of questions per topic."""
    bank = quiz.load_bank(bank_path)
    counts = {t: sum(q["topic"] == t for q in bank["questions"]) for t in quiz.TOPICS}
    for topic, n in counts.items():
        print(f"{topic:<15} {n}")
    print(f"{'total':<15} {len(bank['questions'])}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank", type=Path, default=quiz.BANK_PATH, help="the bank file (quiz/bank.json)")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="readable source -> bank")
    b.add_argument("source", type=Path)
    e = sub.add_parser("export", help="bank -> readable source (keep it out of the repository)")
    e.add_argument("out", type=Path)
    e.add_argument("--force", action="store_true")
    sub.add_parser("check", help="check the bank and count questions per topic")
    args = p.parse_args(argv)
    if args.cmd == "build":
        build(args.source, args.bank)
        check(args.bank)
    elif args.cmd == "export":
        export(args.bank, args.out, args.force)
    else:
        check(args.bank)
    return 0


if __name__ == "__main__":
    sys.exit(main())
