"""``python -m quiz``: take the course quiz in a terminal.

    python -m quiz                         # ask question by question (Vietnamese)
    python -m quiz --lang en --topic training
    python -m quiz --answers "1=a,2=b,data-1=c"   # grade without prompting
    python -m quiz --answers "1=a" --json  # machine-readable report on stdout
    python -m quiz --list                  # ids with their topics

Exit status: 0 when the answers were graded (whatever the score), 2 on bad input (one line on
stderr says what is wrong; nothing is graded).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn, Sequence

import quiz


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"python -m quiz: error: {message} (see python -m quiz --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m quiz",
                description="The DDPM inpainting course quiz (Vietnamese / English).")
    p.add_argument("--lang", default=quiz.DEFAULT_LANG,
                   help=f"language of the questions: vi or en (default {quiz.DEFAULT_LANG})")
    p.add_argument("--topic", default=None,
                   help="only the questions of this topic: " + ", ".join(quiz.TOPICS))
    p.add_argument("--answers", default=None, metavar='"1=a,2=b,..."',
                   help="grade these answers without prompting; missing questions count as wrong")
    p.add_argument("--json", action="store_true",
                   help="print the report (or the --list) as JSON on stdout")
    p.add_argument("--list", action="store_true", help="print the question ids with their topics")
    return p


def _list(questions: list[dict], lang: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"id": q["id"], "topic": q["topic"]} for q in questions]))
        return
    for q in questions:
        text = q[lang]["question"]
        short = text if len(text) <= 70 else text[:67] + "..."
        print(f"{q['id']:<12} {q['topic']:<15} {short}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 graded or listed, 2 bad input, 130 interrupted).

    :param argv: the arguments (``sys.argv[1:]`` when None).
    """
    for stream in (sys.stdout, sys.stderr):  # never crash on a console that lacks Vietnamese
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    args = _parser().parse_args(argv)
    try:
        lang = quiz.check_lang(args.lang)
        topic = quiz.check_topic(args.topic)
        bank = quiz.load_bank()
        questions = quiz.select(bank, topic)
        if args.list:
            _list(questions, lang, args.json)
            return 0
        if args.answers is not None:
            answers = quiz.parse_answers(args.answers)
        else:
            out = sys.stderr if args.json else sys.stdout  # keep stdout pure JSON
            ui = quiz._UI[lang]
            scope = ui["all"] if topic is None else ui["topic"].format(topic=topic)
            print(ui["title"].format(n=len(questions), scope=scope), file=out)
            print(ui["how"], file=out)
            answers = quiz.ask(questions, lang, sys.stdin, out)
        report = quiz.grade(answers, lang=lang, topic=topic, bank=bank)
    except (quiz.QuizError, FileNotFoundError) as exc:
        print(f"python -m quiz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\npython -m quiz: interrupted, nothing graded", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        print(quiz.format_report(report))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. python -m quiz --list | head
        sys.stdout = None  # nothing more can be written; exit quietly
        sys.exit(1)
