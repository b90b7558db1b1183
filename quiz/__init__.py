"""quiz: the course quiz, bilingual (Vietnamese / English) multiple choice, graded automatically.

The bank is ``quiz/bank.json``. Every question has options ``a``-``d`` in both languages, a topic
tag and an explanation. The right answer is not stored in plain text: each question carries a
random ``salt`` and ``answer_hash = sha256(f"{salt}:{id}:{letter}")`` for its right letter, and its
explanations are XOR-ed with a key stream derived from the right letter (``_keystream``). The
grader finds the right letter by hashing every option. This only *hides* the answers from someone
reading the file; self-grading is on trust.

Function API (also used by ``python -m quiz`` and ``quiz/quiz.ipynb``)::

    import quiz
    bank = quiz.load_bank()                         # the parsed, checked bank
    qs = quiz.select(bank, topic="training")        # the questions of one topic (or all)
    print(quiz.format_question(qs[0], lang="en"))
    report = quiz.grade({"1": "a", "2": "b"}, lang="en")
    print(quiz.format_report(report))

Bad input (unknown id, a letter that is not an option, a malformed answers string, an unknown
language or topic) raises :class:`QuizError` (a ``ValueError``) and nothing is graded.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import sys
from pathlib import Path
from typing import Any, Mapping, TextIO

__all__ = [
    "BANK_PATH",
    "DEFAULT_LANG",
    "LANGS",
    "LETTERS",
    "TOPICS",
    "QuizError",
    "answer_hash",
    "ask",
    "build_widget",
    "check_lang",
    "check_topic",
    "format_question",
    "format_report",
    "grade",
    "is_right",
    "load_bank",
    "parse_answers",
    "report_html",
    "seal_question",
    "select",
    "topic_name",
    "unseal_question",
    "validate_answers",
]

BANK_PATH = Path(__file__).with_name("bank.json")
LANGS = ("vi", "en")
DEFAULT_LANG = "vi"
LETTERS = ("a", "b", "c", "d")
TOPICS = (
    "course",
    "data_masks",
    "basic_unet",
    "improved_unet",
    "diffusion_math",
    "training",
    "inference_eval",
)

# Words of the text interface, per language (constants, not configuration).
_UI: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Câu hỏi trắc nghiệm: {n} câu ({scope}).",
        "all": "tất cả chủ đề",
        "topic": "chủ đề {topic}",
        "how": "Gõ một chữ cái (a-d) rồi Enter; dòng trống = bỏ qua; Ctrl-D = dừng và chấm điểm.",
        "question": "Câu {id}",
        "retry": "Hãy gõ một trong {letters} (dòng trống = bỏ qua).",
        "score": "Điểm: {score}/{total}",
        "by_topic": "Theo chủ đề:",
        "unanswered": "Chưa trả lời ({n}): {ids}",
        "right": "Đáp án đúng",
        "given": "bạn chọn",
        "none": "không trả lời",
        "ok": "đúng",
        "wrong": "sai",
        "grade": "Chấm điểm",
    },
    "en": {
        "title": "Course quiz: {n} questions ({scope}).",
        "all": "all topics",
        "topic": "topic {topic}",
        "how": "Type a letter (a-d) and Enter; empty line = skip; Ctrl-D = stop and grade.",
        "question": "Question {id}",
        "retry": "Please type one of {letters} (empty line = skip).",
        "score": "Score: {score}/{total}",
        "by_topic": "By topic:",
        "unanswered": "Unanswered ({n}): {ids}",
        "right": "Right answer",
        "given": "you chose",
        "none": "no answer",
        "ok": "right",
        "wrong": "wrong",
        "grade": "Grade",
    },
}


class QuizError(ValueError):
    """Bad input to the quiz: the message says what is wrong and how to fix it."""


# --------------------------------------------------------------------------- hashing / sealing
def answer_hash(salt: str, qid: str, letter: str) -> str:
    """Hash that marks the right option: ``sha256(f"{salt}:{qid}:{letter}")`` as hex.

    :param salt: the question's random salt (hex string stored in the bank).
    :param qid: the question id, e.g. ``"1"`` or ``"data-3"``.
    :param letter: an option letter, ``"a"``-``"d"``.
    :return: 64 hex digits.
    """
    return hashlib.sha256(f"{salt}:{qid}:{letter}".encode("utf-8")).hexdigest()


def _keystream(salt: str, qid: str, letter: str, lang: str, n: int) -> bytes:
    """``n`` bytes of ``shake_256(f"{salt}:{qid}:{letter}:explanation:{lang}")``.

    The explanation of a question is XOR-ed with this stream, so it can only be read once the
    right letter is known (which the grader finds by hashing the options).
    """
    seed = f"{salt}:{qid}:{letter}:explanation:{lang}".encode("utf-8")
    return hashlib.shake_256(seed).digest(n)


def _xor(data: bytes, key: bytes) -> bytes:
    return bytes(x ^ k for x, k in zip(data, key))


def _encode_text(text: str, salt: str, qid: str, letter: str, lang: str) -> str:
    raw = text.encode("utf-8")
    return base64.b64encode(_xor(raw, _keystream(salt, qid, letter, lang, len(raw)))).decode("ascii")


def _decode_text(blob: str, salt: str, qid: str, letter: str, lang: str) -> str:
    raw = base64.b64decode(blob.encode("ascii"))
    return _xor(raw, _keystream(salt, qid, letter, lang, len(raw))).decode("utf-8")


def seal_question(plain: Mapping[str, Any], salt: str | None = None) -> dict[str, Any]:
    """Turn a maintainer's plain question (with ``"answer": letter``) into a bank entry.

    Adds a random ``salt`` and ``answer_hash = sha256(f"{salt}:{id}:{answer}")``, replaces each
    language's ``explanation`` by ``explanation_enc`` (XOR with a key stream derived from the
    right letter, base64) and drops ``answer``.

    :param plain: ``{"id", "topic", "answer", "vi": {...}, "en": {...}}``, each language holding
        ``question``, ``options`` (letter -> text) and ``explanation``.
    :param salt: the salt to use (a fresh random one when None).
    :return: the bank entry.
    """
    qid, letter = str(plain["id"]), str(plain["answer"]).lower()
    salt = salt or secrets.token_hex(8)
    out: dict[str, Any] = {"id": qid, "topic": plain["topic"], "salt": salt,
                           "answer_hash": answer_hash(salt, qid, letter)}
    for lang in LANGS:
        part = plain[lang]
        if letter not in part["options"]:
            raise QuizError(f"question {qid}: answer {letter!r} is not one of its options")
        out[lang] = {
            "question": part["question"],
            "options": dict(part["options"]),
            "explanation_enc": _encode_text(part["explanation"], salt, qid, letter, lang),
        }
    return out


def unseal_question(question: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`seal_question`: the plain question with ``answer`` and explanations.

    :param question: a bank entry.
    :return: ``{"id", "topic", "answer", "vi": {...}, "en": {...}}``.
    """
    letter = _right_letter(question)
    qid, salt = question["id"], question["salt"]
    out: dict[str, Any] = {"id": qid, "topic": question["topic"], "answer": letter}
    for lang in LANGS:
        part = question[lang]
        out[lang] = {
            "question": part["question"],
            "options": dict(part["options"]),
            "explanation": _decode_text(part["explanation_enc"], salt, qid, letter, lang),
        }
    return out


def is_right(question: Mapping[str, Any], letter: str) -> bool:
    """Whether ``letter`` is the right option of ``question`` (by its salted hash).

    :param question: a bank entry.
    :param letter: an option letter (any case).
    """
    digest = answer_hash(question["salt"], question["id"], str(letter).strip().lower())
    return secrets.compare_digest(digest, question["answer_hash"])


def _right_letter(question: Mapping[str, Any]) -> str:
    """The one option letter whose hash matches; raises QuizError if zero or several do."""
    hits = [letter for letter in question["vi"]["options"] if is_right(question, letter)]
    if len(hits) != 1:
        raise QuizError(f"question {question['id']}: {len(hits)} options match its answer_hash "
                        "(expected exactly one); rebuild the bank with tools/make_quiz_bank.py")
    return hits[0]


# --------------------------------------------------------------------------- the bank
def _check_entry(q: Any, where: str) -> None:
    """Raise QuizError if one bank entry is malformed."""
    if not isinstance(q, dict):
        raise QuizError(f"{where}: a question must be a JSON object")
    for key in ("id", "topic", "salt", "answer_hash", *LANGS):
        if key not in q:
            raise QuizError(f"{where}: missing field {key!r}")
    if not isinstance(q["id"], str) or not q["id"] or q["id"] != q["id"].strip().lower():
        raise QuizError(f"{where}: id must be a non-empty lower-case string")
    if q["topic"] not in TOPICS:
        raise QuizError(f"{where}: unknown topic {q['topic']!r} (one of {', '.join(TOPICS)})")
    letters = None
    for lang in LANGS:
        part = q[lang]
        if not isinstance(part, dict):
            raise QuizError(f"{where}: {lang!r} must be an object")
        for key in ("question", "explanation_enc"):
            if not isinstance(part.get(key), str) or not part[key].strip():
                raise QuizError(f"{where}: {lang}.{key} is missing or empty")
        opts = part["options"]
        if not isinstance(opts, dict) or any(not isinstance(t, str) or not t.strip()
                                             for t in opts.values()):
            raise QuizError(f"{where}: {lang}.options must map letters to non-empty texts")
        if list(opts) != list(LETTERS[: len(opts)]) or len(opts) < 2:
            raise QuizError(f"{where}: {lang}.options must be lettered a, b, ... in order")
        if letters is not None and list(opts) != letters:
            raise QuizError(f"{where}: vi and en must have the same option letters")
        letters = list(opts)


def load_bank(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check the question bank.

    Checks that ids are unique, topics known, both languages present with the same option
    letters, and that exactly one option of every question matches its ``answer_hash``.

    :param path: the bank file; ``quiz/bank.json`` beside this module when None.
    :return: ``{"version", "topics", "questions": [entry, ...]}`` as stored.
    :raises FileNotFoundError: if the file does not exist.
    :raises QuizError: if it is malformed (the message names the question and the field).
    """
    path = Path(path) if path is not None else BANK_PATH
    if not path.is_file():
        raise FileNotFoundError(f"quiz bank not found: {path} (reinstall the kit or pass path=)")
    try:
        bank = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise QuizError(f"{path}: not valid JSON ({exc})") from exc
    questions = bank.get("questions") if isinstance(bank, dict) else None
    if not isinstance(questions, list) or not questions:
        raise QuizError(f"{path}: expected an object with a non-empty 'questions' list")
    seen: set[str] = set()
    for i, q in enumerate(questions):
        _check_entry(q, f"{path.name} question #{i + 1}")
        if q["id"] in seen:
            raise QuizError(f"{path.name}: duplicate question id {q['id']!r}")
        seen.add(q["id"])
        _right_letter(q)
    return bank


def check_lang(lang: str) -> str:
    """Return ``lang`` if it is ``"vi"`` or ``"en"``; raise QuizError otherwise."""
    if lang not in LANGS:
        raise QuizError(f"unknown language {lang!r}: choose one of {', '.join(LANGS)}")
    return lang


def check_topic(topic: str | None) -> str | None:
    """Return ``topic`` if it is None (all topics) or one of :data:`TOPICS`; raise otherwise."""
    if topic is not None and topic not in TOPICS:
        raise QuizError(f"unknown topic {topic!r}: choose one of {', '.join(TOPICS)}")
    return topic


def select(bank: Mapping[str, Any] | None = None, topic: str | None = None) -> list[dict[str, Any]]:
    """The questions of one topic (all topics when None), in bank order.

    :param bank: a bank from :func:`load_bank` (loaded when None).
    :param topic: one of :data:`TOPICS` or None.
    """
    check_topic(topic)
    bank = load_bank() if bank is None else bank
    return [q for q in bank["questions"] if topic is None or q["topic"] == topic]


def topic_name(bank: Mapping[str, Any], topic: str, lang: str) -> str:
    """Human name of a topic in ``lang`` (the tag itself if the bank has no name for it)."""
    return bank.get("topics", {}).get(topic, {}).get(lang, topic)


# --------------------------------------------------------------------------- answers
def parse_answers(text: str) -> dict[str, str]:
    """Parse ``"1=a,2=b, data-3=C"`` into ``{"1": "a", "2": "b", "data-3": "c"}``.

    Items are separated by commas, each ``id=letter``; spaces around items are ignored, ids and
    letters are lower-cased. Empty items (a trailing comma) are skipped.

    :raises QuizError: if an item is not ``id=letter``, an id repeats, or nothing is given.
    """
    answers: dict[str, str] = {}
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        qid, sep, letter = item.partition("=")
        qid, letter = qid.strip().lower(), letter.strip().lower()
        if not sep or not qid or not letter or "=" in letter:
            raise QuizError(f"malformed answer {item!r}: write id=letter, e.g. --answers \"1=a,2=b\"")
        if qid in answers:
            raise QuizError(f"question {qid} is answered twice")
        answers[qid] = letter
    if not answers:
        raise QuizError("no answers given: write e.g. --answers \"1=a,2=b\"")
    return answers


def validate_answers(answers: Mapping[Any, Any], bank: Mapping[str, Any] | None = None,
                     topic: str | None = None) -> dict[str, str | None]:
    """Check answers against the questions being graded.

    :param answers: question id -> letter (any case); None or ``""`` means skipped.
    :param bank: a bank from :func:`load_bank` (loaded when None).
    :param topic: only the questions of this topic are graded (None = all).
    :return: id -> lower-case letter or None, for every graded question, in bank order.
    :raises QuizError: unknown id, an id outside the topic, or a letter that is not one of that
        question's options.
    """
    if not isinstance(answers, Mapping):
        raise QuizError("answers must be a dict of question id -> letter, e.g. {'1': 'a'}")
    bank = load_bank() if bank is None else bank
    by_id = {q["id"]: q for q in select(bank, topic)}
    clean: dict[str, str | None] = {qid: None for qid in by_id}
    for raw_id, raw_letter in answers.items():
        qid = str(raw_id).strip().lower()
        if qid not in by_id:
            if any(q["id"] == qid for q in bank["questions"]):
                raise QuizError(f"question {qid} is not in topic {topic!r}")
            raise QuizError(f"unknown question id {qid!r} (python -m quiz --list shows the ids)")
        if raw_letter is None or str(raw_letter).strip() == "":
            continue
        letter = str(raw_letter).strip().lower()
        options = list(by_id[qid]["vi"]["options"])
        if letter not in options:
            raise QuizError(f"question {qid}: {letter!r} is not an option (choose one of "
                            f"{', '.join(options)})")
        clean[qid] = letter
    return clean


# --------------------------------------------------------------------------- grading
def grade(answers: Mapping[Any, Any], lang: str = DEFAULT_LANG, topic: str | None = None,
          bank: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Grade answers; unanswered questions count as wrong and are listed.

    :param answers: question id -> letter, e.g. ``{"1": "a", "data-2": "c"}``; None = skipped.
    :param lang: ``"vi"`` or ``"en"``: language of the question texts and explanations.
    :param topic: grade only this topic (``total`` is then that topic's size); None = all.
    :param bank: a bank from :func:`load_bank` (loaded when None).
    :return: ``{"score", "total", "lang", "topic", "results": [{"id", "topic", "question",
        "given", "correct", "explanation"}, ...], "unanswered": [ids], "by_topic": {topic:
        {"score", "total"}}}``. The explanation starts with the right answer.
    :raises QuizError: bad language, topic, id or letter; nothing is graded then.
    """
    check_lang(lang)
    bank = load_bank() if bank is None else bank
    questions = select(bank, topic)
    given = validate_answers(answers, bank, topic)
    ui = _UI[lang]
    results, unanswered = [], []
    by_topic: dict[str, dict[str, int]] = {}
    for q in questions:
        right = _right_letter(q)
        part = q[lang]
        letter = given[q["id"]]
        correct = letter == right
        note = _decode_text(part["explanation_enc"], q["salt"], q["id"], right, lang)
        results.append({
            "id": q["id"],
            "topic": q["topic"],
            "question": part["question"],
            "given": letter,
            "correct": correct,
            "explanation": f"{ui['right']}: {right}) {part['options'][right]}. {note}",
        })
        if letter is None:
            unanswered.append(q["id"])
        tally = by_topic.setdefault(q["topic"], {"score": 0, "total": 0})
        tally["score"] += int(correct)
        tally["total"] += 1
    return {
        "score": sum(r["correct"] for r in results),
        "total": len(results),
        "lang": lang,
        "topic": topic,
        "results": results,
        "unanswered": unanswered,
        "by_topic": by_topic,
    }


# --------------------------------------------------------------------------- text interface
def format_question(question: Mapping[str, Any], lang: str = DEFAULT_LANG) -> str:
    """The question and its lettered options as plain text (no answer).

    :param question: a bank entry.
    :param lang: ``"vi"`` or ``"en"``.
    """
    part = question[check_lang(lang)]
    head = f"{_UI[lang]['question'].format(id=question['id'])} [{question['topic']}]: {part['question']}"
    return "\n".join([head] + [f"  {k}) {v}" for k, v in part["options"].items()])


def format_report(report: Mapping[str, Any]) -> str:
    """A graded report (from :func:`grade`) as plain text: score, per topic, then per question.

    :param report: the dict returned by :func:`grade`.
    """
    ui = _UI[report.get("lang", DEFAULT_LANG)]
    lines = [ui["score"].format(score=report["score"], total=report["total"]), ui["by_topic"]]
    for topic, tally in report["by_topic"].items():
        lines.append(f"  {topic:<15} {tally['score']}/{tally['total']}")
    if report["unanswered"]:
        lines.append(ui["unanswered"].format(n=len(report["unanswered"]),
                                             ids=", ".join(report["unanswered"])))
    for r in report["results"]:
        mark = ui["ok"] if r["correct"] else ui["wrong"]
        given = r["given"] if r["given"] else ui["none"]
        lines += ["", f"[{mark}] {r['id']} ({r['topic']}), {ui['given']}: {given}",
                  f"  {r['question']}", f"  {r['explanation']}"]
    return "\n".join(lines)


def ask(questions: list[Mapping[str, Any]], lang: str = DEFAULT_LANG, stdin: TextIO | None = None,
        stdout: TextIO | None = None) -> dict[str, str | None]:
    """Ask the questions one by one on a text stream; return the answers (for :func:`grade`).

    Reads one line per question: a letter (any case) answers, an empty line skips, end of input
    (Ctrl-D) stops and leaves the rest unanswered; anything else is asked again.

    :param questions: the questions to ask (see :func:`select`).
    :param lang: ``"vi"`` or ``"en"``.
    :param stdin: where answers are read (``sys.stdin`` when None).
    :param stdout: where questions and prompts are written (``sys.stdout`` when None).
    :return: id -> letter or None (skipped / not reached).
    """
    check_lang(lang)
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    ui = _UI[lang]
    answers: dict[str, str | None] = {q["id"]: None for q in questions}
    for q in questions:
        options = list(q[lang]["options"])
        print("\n" + format_question(q, lang), file=stdout)
        while True:
            print("> ", end="", file=stdout, flush=True)
            line = stdin.readline()
            if line == "":  # end of input: stop asking
                print(file=stdout)
                return answers
            choice = line.strip().lower()
            if choice == "" or choice in options:
                answers[q["id"]] = choice or None
                break
            print(ui["retry"].format(letters=", ".join(options)), file=stdout)
    return answers


# --------------------------------------------------------------------------- notebook interface
def report_html(report: Mapping[str, Any], bank: Mapping[str, Any] | None = None) -> str:
    """A graded report as an HTML fragment (score, a per-topic table, explanations).

    :param report: the dict returned by :func:`grade`.
    :param bank: for the topic names (loaded when None).
    """
    bank = load_bank() if bank is None else bank
    lang = report.get("lang", DEFAULT_LANG)
    ui, esc = _UI[lang], html.escape
    rows = "".join(
        f"<tr><td>{esc(topic_name(bank, t, lang))}</td><td>{s['score']}/{s['total']}</td></tr>"
        for t, s in report["by_topic"].items())
    parts = [f"<h3>{esc(ui['score'].format(score=report['score'], total=report['total']))}</h3>",
             f"<table>{rows}</table>"]
    if report["unanswered"]:
        missing = ui["unanswered"].format(n=len(report["unanswered"]), ids=", ".join(report["unanswered"]))
        parts.append(f"<p>{esc(missing)}</p>")
    items = []
    for r in report["results"]:
        mark = "&#10004;" if r["correct"] else "&#10008;"
        given = r["given"] if r["given"] else ui["none"]
        items.append(f"<li>{mark} <b>{esc(r['id'])}</b> ({esc(ui['given'])}: {esc(given)}) "
                     f"{esc(r['question'])}<br><i>{esc(r['explanation'])}</i></li>")
    parts.append(f"<ol style='list-style:none;padding-left:0'>{''.join(items)}</ol>")
    return "\n".join(parts)


def build_widget(lang: str = DEFAULT_LANG, topic: str | None = None,
                 bank: Mapping[str, Any] | None = None) -> Any:
    """An ipywidgets form: one RadioButtons per question, a Grade button, an HTML result.

    The returned ``VBox`` also carries ``.radios`` (id -> RadioButtons), ``.grade_button``,
    ``.result`` (the HTML widget) and ``.report`` (the last graded report, None before).

    :param lang: ``"vi"`` or ``"en"``.
    :param topic: only this topic (None = all).
    :param bank: a bank from :func:`load_bank` (loaded when None).
    """
    import ipywidgets as w  # only needed in a notebook

    check_lang(lang)
    bank = load_bank() if bank is None else bank
    questions = select(bank, topic)
    radios: dict[str, Any] = {}
    children: list[Any] = []
    for q in questions:
        part = q[lang]
        tag = html.escape(topic_name(bank, q["topic"], lang))
        head = f"<b>{html.escape(q['id'])}</b> <small>[{tag}]</small> {html.escape(part['question'])}"
        radio = w.RadioButtons(options=[(f"{k}) {v}", k) for k, v in part["options"].items()],
                               index=None, layout=w.Layout(width="auto"))
        radios[q["id"]] = radio
        children += [w.HTML(head), radio]
    button = w.Button(description=_UI[lang]["grade"], button_style="primary")
    result = w.HTML()
    box = w.VBox(children + [button, result])
    box.radios, box.grade_button, box.result, box.report = radios, button, result, None

    def on_grade(_: Any) -> None:
        report = grade({qid: r.value for qid, r in radios.items()}, lang=lang, topic=topic, bank=bank)
        box.report = report
        result.value = report_html(report, bank)

    button.on_click(on_grade)
    return box
