"""The course quiz: the bank, the grader, the CLI (in a subprocess), the widget, the notebook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # test the working tree's package, installed or not
    sys.path.insert(0, str(ROOT))

import quiz  # noqa: E402

BANK_FILE = ROOT / "quiz" / "bank.json"
NON_COURSE = [t for t in quiz.TOPICS if t != "course"]
SYLLABUS_LETTERS = {"1": "a", "2": "b", "3": "a", "4": "a", "5": "a", "6": "c", "7": "d", "8": "a"}


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(BANK_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bank() -> dict:
    return quiz.load_bank()


def right_letters(bank: dict) -> dict[str, str]:
    """The right letter of every question, found by the grader's hash check."""
    return {q["id"]: next(l for l in q["vi"]["options"] if quiz.is_right(q, l))
            for q in bank["questions"]}


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "quiz", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, encoding="utf-8", env=env, timeout=60)


# --------------------------------------------------------------------------- the bank
def test_bank_is_well_formed_and_parallel(raw):
    ids = [q["id"] for q in raw["questions"]]
    assert len(ids) == len(set(ids)), "question ids must be unique"
    for q in raw["questions"]:
        assert q["topic"] in quiz.TOPICS, q["id"]
        vi, en = q["vi"], q["en"]
        for part in (vi, en):
            assert part["question"].strip() and part["explanation_enc"].strip(), q["id"]
            assert list(part["options"]) == ["a", "b", "c", "d"], q["id"]
            assert all(text.strip() for text in part["options"].values()), q["id"]
        assert list(vi["options"]) == list(en["options"]), q["id"]
        assert vi["question"] != en["question"], f"{q['id']}: English text missing"
    for topic in quiz.TOPICS:
        assert set(raw["topics"][topic]) == {"vi", "en"}


def test_exactly_one_right_option_per_question_as_graded(bank):
    # grade "everything a", "everything b", ...: each question is right in exactly one of them
    reports = [quiz.grade({q["id"]: letter for q in bank["questions"]}, lang="en", bank=bank)
               for letter in quiz.LETTERS]
    for i, q in enumerate(bank["questions"]):
        hits = [letter for letter, rep in zip(quiz.LETTERS, reports) if rep["results"][i]["correct"]]
        assert len(hits) == 1, f"question {q['id']} has right options {hits}"
    assert sum(rep["score"] for rep in reports) == len(bank["questions"])


def test_course_questions_keep_ids_order_and_letters(bank):
    course = [q for q in bank["questions"] if q["topic"] == "course"]
    assert [q["id"] for q in course] == [str(i) for i in range(1, 11)]
    assert [q["id"] for q in bank["questions"][:10]] == [str(i) for i in range(1, 11)]
    letters = right_letters(bank)
    assert {i: letters[i] for i in SYLLABUS_LETTERS} == SYLLABUS_LETTERS
    by_id = {q["id"]: q for q in course}
    # the course's own wording and options are kept
    course_q1 = "Mục tiêu của Forward Diffusion Process trong mô hình Diffusion là gì?"
    assert by_id["1"]["vi"]["question"] == course_q1
    assert list(by_id["3"]["vi"]["options"].values()) == ["Linspace", "Sigmoid", "ReLU", "Tanh"]
    assert list(by_id["8"]["en"]["options"].values()) == ["CelebA", "MNIST", "CIFAR10", "CIFAR100"]
    # 9 and 10 rewritten: one right option, on the same topics (loss not used, metric used)
    assert by_id["9"]["en"]["options"][letters["9"]] == "BCELoss"
    assert by_id["10"]["en"]["options"][letters["10"]] == "MAE"


def test_topic_counts(bank):
    counts = {t: sum(q["topic"] == t for q in bank["questions"]) for t in quiz.TOPICS}
    assert counts["course"] == 10
    assert all(counts[t] >= 4 for t in NON_COURSE), counts
    assert sum(counts.values()) == len(bank["questions"]) >= 30


def test_bank_text_does_not_show_answers_or_explanations(raw, bank):
    text = BANK_FILE.read_text(encoding="utf-8")
    assert '"answer":' not in text and '"explanation":' not in text
    for lang in quiz.LANGS:
        shown = {r["id"]: r["explanation"] for r in quiz.grade({}, lang=lang, bank=bank)["results"]}
        for q in bank["questions"]:
            note = quiz.unseal_question(q)[lang]["explanation"]
            assert len(note) > 40 and note[:40] not in text, (q["id"], lang)
            assert shown[q["id"]].endswith(note)  # shown only after grading


def test_load_bank_rejects_tampered_and_duplicate(tmp_path, raw):
    broken = json.loads(json.dumps(raw))
    broken["questions"][3]["answer_hash"] = "0" * 64
    path = tmp_path / "bank.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(quiz.QuizError, match="question 4: 0 options match"):
        quiz.load_bank(path)
    dup = json.loads(json.dumps(raw))
    dup["questions"][1]["id"] = "1"
    path.write_text(json.dumps(dup), encoding="utf-8")
    with pytest.raises(quiz.QuizError, match="duplicate question id '1'"):
        quiz.load_bank(path)
    with pytest.raises(FileNotFoundError):
        quiz.load_bank(tmp_path / "missing.json")


def test_seal_unseal_round_trip(bank):
    plain = quiz.unseal_question(bank["questions"][5])
    assert plain["answer"] == "c" and plain["id"] == "6"
    sealed = quiz.seal_question(plain, salt="00ff")
    assert sealed["salt"] == "00ff" and "answer" not in sealed
    assert [quiz.is_right(sealed, l) for l in "abcd"] == [False, False, True, False]
    assert quiz.unseal_question(sealed) == plain


# --------------------------------------------------------------------------- the grader
def test_perfect_scores_n_of_n_and_all_wrong_scores_zero(bank):
    right = right_letters(bank)
    n = len(bank["questions"])
    perfect = quiz.grade({i: l.upper() for i, l in right.items()}, lang="vi", bank=bank)
    assert (perfect["score"], perfect["total"], perfect["unanswered"]) == (n, n, [])
    wrong = {i: next(x for x in "abcd" if x != l) for i, l in right.items()}
    zero = quiz.grade(wrong, lang="en", bank=bank)
    assert (zero["score"], zero["total"], zero["unanswered"]) == (0, n, [])
    assert all(not r["correct"] for r in zero["results"])


def test_report_fields_unanswered_and_by_topic(bank):
    report = quiz.grade({"1": "a", "2": "c", "data-1": None}, lang="en", bank=bank)
    assert set(report) == {"score", "total", "lang", "topic", "results", "unanswered", "by_topic"}
    assert report["score"] == 1 and report["total"] == len(bank["questions"])
    assert report["results"][0] == {**report["results"][0], "id": "1", "topic": "course",
                                    "given": "a", "correct": True}
    assert report["results"][1]["given"] == "c" and not report["results"][1]["correct"]
    assert report["results"][1]["explanation"].startswith("Right answer: b) Remove the noise")
    assert report["unanswered"] == [q["id"] for q in bank["questions"]][2:]
    assert report["by_topic"]["course"] == {"score": 1, "total": 10}
    assert sum(t["total"] for t in report["by_topic"].values()) == report["total"]
    vi = quiz.grade({"1": "a"}, lang="vi", bank=bank)
    assert vi["results"][0]["explanation"].startswith("Đáp án đúng: a) Thêm một lượng nhỏ nhiễu")


def test_topic_restricts_total(bank):
    report = quiz.grade({"train-1": "c"}, lang="en", topic="training", bank=bank)
    n = sum(q["topic"] == "training" for q in bank["questions"])
    assert report["total"] == n and report["score"] == 1
    assert set(report["by_topic"]) == {"training"}


def test_parse_answers():
    assert quiz.parse_answers(" 1=a, 2 = B ,data-3=c,") == {"1": "a", "2": "b", "data-3": "c"}
    for bad, msg in [("1a", "malformed"), ("=a", "malformed"), ("1=", "malformed"),
                     ("1=a=b", "malformed"), ("1=a,1=b", "answered twice"), ("", "no answers"),
                     (" , ", "no answers")]:
        with pytest.raises(quiz.QuizError, match=msg):
            quiz.parse_answers(bad)


@pytest.mark.parametrize("kwargs, msg", [
    ({"answers": {"99": "a"}}, "unknown question id '99'"),
    ({"answers": {"1": "e"}}, "question 1: 'e' is not an option"),
    ({"answers": {"math-1": "a"}, "topic": "course"}, "not in topic 'course'"),
    ({"answers": {"1": "a"}, "lang": "fr"}, "unknown language 'fr'"),
    ({"answers": {"1": "a"}, "topic": "gans"}, "unknown topic 'gans'"),
    ({"answers": ["1=a"]}, "answers must be a dict"),
])
def test_grade_rejects_bad_input(bank, kwargs, msg):
    with pytest.raises(quiz.QuizError, match=msg):
        quiz.grade(bank=bank, **kwargs)


def test_ask_reads_letters_skips_and_retries(bank):
    import io

    questions = quiz.select(bank, "course")[:4]
    out = io.StringIO()
    answers = quiz.ask(questions, "en", io.StringIO("A\nx\nb\n\n"), out)
    assert answers == {"1": "a", "2": "b", "3": None, "4": None}
    assert out.getvalue().count("Please type one of a, b, c, d") == 1


# --------------------------------------------------------------------------- the CLI
def test_cli_answers_json_perfect(bank):
    right = right_letters(bank)
    proc = run_cli("--answers", ",".join(f"{i}={l}" for i, l in right.items()), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["score"] == report["total"] == len(right)
    assert [r["id"] for r in report["results"]] == list(right)


def test_cli_answers_text_with_topic_and_lang():
    proc = run_cli("--answers", "1=a,2=a", "--topic", "course", "--lang", "en")
    assert proc.returncode == 0, proc.stderr
    assert "Score: 1/10" in proc.stdout
    assert "Unanswered (8): 3, 4, 5, 6, 7, 8, 9, 10" in proc.stdout


def test_cli_interactive_reads_stdin():
    # 1: upper-case A; 2: a bad letter, then b; 3: skipped; then end of input
    proc = run_cli("--topic", "course", "--lang", "en", "--json", stdin="A\nz\nb\n\n")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # stdout holds only the JSON; prompts went to stderr
    assert (report["score"], report["total"]) == (2, 10)
    assert [r["given"] for r in report["results"][:4]] == ["a", "b", None, None]
    assert report["unanswered"] == [str(i) for i in range(3, 11)]
    assert "Question 1 [course]" in proc.stderr and "Please type one of" in proc.stderr


def test_cli_interactive_text_in_vietnamese():
    proc = run_cli("--topic", "training", stdin="c\n")
    assert proc.returncode == 0, proc.stderr
    assert "Hàm loss huấn luyện" in proc.stdout
    assert "Điểm: 1/5" in proc.stdout


def test_cli_list():
    proc = run_cli("--list")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["1", "course"], ["2", "course"]]
    assert len(lines) == len(quiz.load_bank()["questions"])
    listed = json.loads(run_cli("--list", "--json", "--topic", "basic_unet").stdout)
    assert listed == [{"id": f"basic-{i}", "topic": "basic_unet"} for i in range(1, 5)]


@pytest.mark.parametrize("args, msg", [
    (["--answers", "1=e"], "'e' is not an option"),
    (["--answers", "99=a"], "unknown question id"),
    (["--answers", "1a,2=b"], "malformed answer"),
    (["--answers", ""], "no answers"),
    (["--answers", "math-1=a", "--topic", "course"], "not in topic"),
    (["--lang", "fr", "--answers", "1=a"], "unknown language 'fr'"),
    (["--topic", "gans"], "unknown topic 'gans'"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_cli_bad_input_exits_2_with_one_line(args, msg):
    proc = run_cli(*args, "--json", stdin="")
    assert proc.returncode == 2
    assert proc.stdout == ""  # nothing graded
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], proc.stderr


# --------------------------------------------------------------------------- widget and notebook
def test_widget_grades_on_click(bank):
    pytest.importorskip("ipywidgets")
    form = quiz.build_widget(lang="en", topic="course", bank=bank)
    assert len(form.radios) == 10 and all(r.value is None for r in form.radios.values())
    right = right_letters(bank)
    for qid, radio in form.radios.items():
        radio.value = right[qid]
    form.radios["10"].value = None  # leave one unanswered
    form.grade_button.click()
    assert (form.report["score"], form.report["total"]) == (9, 10)
    assert form.report["unanswered"] == ["10"]
    assert "Score: 9/10" in form.result.value and "Course questions" in form.result.value


def test_notebook_has_colab_cell_widgets_and_no_outputs():
    nb = json.loads((ROOT / "quiz" / "quiz.ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    first = "".join(code[0]["source"])
    assert first.startswith('KIT_URL = "git+https://github.com/ddpm-inpainting-lab/ddpm-inpainting-lab"')
    assert 'if "google.colab" in sys.modules:' in first and "!pip install" in first
    sources = "".join("".join(c["source"]) for c in code)
    assert sources.count("KIT_URL =") == 1
    assert "quiz.build_widget(" in sources and "quiz.grade(" in sources
    assert "input(" not in sources  # nothing may block under nbval
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_tool_export_build_round_trip(tmp_path, bank):
    tool = [sys.executable, str(ROOT / "tools" / "make_quiz_bank.py")]
    inside = ROOT / "answers.json"
    refused = subprocess.run(tool + ["export", str(inside)], capture_output=True, text=True)
    assert refused.returncode != 0 and not inside.exists()
    src, out = tmp_path / "source.json", tmp_path / "bank.json"
    subprocess.run(tool + ["export", str(src)], check=True, capture_output=True)
    plain = json.loads(src.read_text(encoding="utf-8"))
    assert [q["answer"] for q in plain["questions"]] == list(right_letters(bank).values())
    subprocess.run(tool + ["--bank", str(out), "build", str(src)], check=True, capture_output=True)
    rebuilt = quiz.load_bank(out)
    assert right_letters(rebuilt) == right_letters(bank)
    assert [q["salt"] for q in rebuilt["questions"]] != [q["salt"] for q in bank["questions"]]
