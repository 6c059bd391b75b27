"""The section-4 selection experiment (rdpt_lab/experiment.py): config checks, the β choice, the
selected sets, the results table, and a kill → resume → skip run on a tiny random model.

Expected numbers are computed here from the corpus's construction (each action's p_T, p_S and
word count are chosen below), not read back from rdpt_core.selection or rdpt_core.stats.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from rdpt_lab import experiment as E

WORDS = ("apple", "stone", "river", "cloud", "maple", "pencil", "garden", "window", "copper", "lantern")
GRID = (0.05, 0.1, 0.15, 0.2)  # rdpt_core.stats.beta_grid()'s default, written out
Z = 1.959963984540054


# ---- a hand-made scored teacher corpus -----------------------------------------------------------
@dataclass(frozen=True)
class Response:
    record_id: str
    question_id: str
    correct: bool
    actions: tuple[tuple[int, float, float], ...]  # (words, p_teacher, p_student) per sentence

    def text(self) -> str:
        sentences = []
        for i, (n_words, _, _) in enumerate(self.actions):
            words = [WORDS[(i + j) % len(WORDS)] for j in range(n_words)]
            sentences.append(" ".join([words[0].capitalize(), *words[1:]]) + ".")
        return " ".join(sentences)


def design(seed: int = 6) -> list[Response]:
    """3 questions × 4 responses. Response r2 of each question is *incorrect* and the longest and
    most Teacher-heavy of all: were it kept, longest and max_teacher_count would pick it. Correct
    responses have 3 or 7 actions, so no class share k/n is a multiple of 0.1 other than 0 and 1
    (numpy's bin edges at 0.3, 0.6, 0.7 are a hair above those values)."""
    rng = np.random.default_rng(seed)
    out = []
    for q in range(3):
        for r in range(4):
            if r == 2:
                actions = tuple((9, 0.95, 0.05) for _ in range(7))
            else:
                n = int(rng.choice([3, 7]))
                actions = tuple((int(rng.integers(2, 7)), round(float(rng.uniform(0.05, 0.95)), 3),
                                 round(float(rng.uniform(0.05, 0.95)), 3)) for _ in range(n))
            out.append(Response(f"q{q}-r{r}", f"q{q}", r != 2, actions))
    return out


def save_design(responses: list[Response], directory: Path) -> Path:
    from rdpt_core.backends.base import TokenScores
    from rdpt_core.records import Record
    from rdpt_core.scoring import ScoredCorpus
    from rdpt_core.segment import marker_set
    from rdpt_core.store import save_corpus

    records, tokens = [], {"teacher": {}, "student": {}}
    for resp in responses:
        text = resp.text()
        records.append(Record(resp.record_id, resp.question_id, f"Question {resp.question_id}: how many?",
                              text, resp.correct, "teacher"))
        spans = np.array([m.span() for m in re.finditer(r"\S+", text)], dtype=np.int64)
        owner = np.repeat(np.arange(len(resp.actions)), [w for w, _, _ in resp.actions])
        for role, column in (("teacher", 1), ("student", 2)):
            p = np.array([a[column] for a in resp.actions])
            flags = np.zeros(len(spans), dtype=bool)
            tokens[role][resp.record_id] = TokenScores(np.arange(len(spans), dtype=np.int64), spans,
                                                       np.log(p)[owner], flags, flags)
    save_corpus(ScoredCorpus(records, tokens, marker_set(), {"teacher": "T", "student": "S"}), directory)
    return directory


def n_teacher(resp: Response, beta: float) -> int:
    return sum(pt - ps > beta for _, pt, ps in resp.actions)


def n_tokens(resp: Response) -> int:
    return sum(w for w, _, _ in resp.actions)


def mean_logp_student(resp: Response) -> float:
    return sum(w * math.log(ps) for w, _, ps in resp.actions) / n_tokens(resp)


def first_best(candidates: list[Response], key, largest: bool = True) -> Response:
    """The best by ``key``; on a tie the first in input order (strict comparison)."""
    best = candidates[0]
    for c in candidates[1:]:
        if (key(c) > key(best)) if largest else (key(c) < key(best)):
            best = c
    return best


def hand_beta(responses: list[Response]) -> float:
    """The histogram-overlap rule by hand, in exact fractions: per β, the two most frequent
    classes' per-response share histograms (10 bins of [0, 1], 1 in the last) overlap least."""
    scores: dict[float, Fraction] = {}
    for beta in GRID:
        classes = [["Teacher" if pt - ps > beta else "Student" if ps - pt > beta else "Common"
                    for _, pt, ps in r.actions] for r in responses]
        counts = {c: sum(cls.count(c) for cls in classes) for c in ("Teacher", "Student", "Common")}
        ranked = sorted(counts.values(), reverse=True)
        assert ranked[1] > ranked[2] > 0, "fixture: the two most frequent classes must be unambiguous"
        a, b = sorted(counts, key=counts.get, reverse=True)[:2]

        def hist(c: str, classes=classes) -> list[Fraction]:
            h = [Fraction(0)] * 10
            for cls in classes:
                h[min(10 * cls.count(c) // len(cls), 9)] += Fraction(1, len(classes))
            return h

        scores[beta] = sum((min(x, y) for x, y in zip(hist(a), hist(b))), Fraction(0))
    ranked_betas = sorted(GRID, key=lambda beta: (scores[beta], beta))
    # a clear winner: float sums in the code under test cannot turn it into a tie the other way
    assert scores[ranked_betas[1]] - scores[ranked_betas[0]] > Fraction(1, 10**6), scores
    return ranked_betas[0]


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


# ---- config --------------------------------------------------------------------------------------
BASE = {"student": "some/model", "teacher_corpus": "tc", "test_questions": "test.jsonl", "out": "out"}


def parse(**changes):
    data = {**BASE, **changes}
    return E.parse_config({k: v for k, v in data.items() if v is not None}, "exp.toml")


@pytest.mark.parametrize("changes, key", [
    ({"student": None}, "student"),
    ({"student": 3}, "student"),
    ({"teacher_corpus": None}, "teacher_corpus"),
    ({"out": None}, "out"),
    ({"checker": "exact"}, "checker"),
    ({"strategies": ["longest", "best"]}, "strategies"),
    ({"strategies": []}, "strategies"),
    ({"strategies": ["longest", "longest"]}, "strategies"),
    ({"seeds": [0, "1"]}, "seeds"),
    ({"seeds": 0}, "seeds"),
    ({"beta": "best"}, "beta"),
    ({"beta": 1.5}, "beta"),
    ({"beta": True}, "beta"),
    ({"only_correct": "yes"}, "only_correct"),
    ({"segmenter": "words"}, "segmenter"),
    ({"student_template": "fancy"}, "student_template"),
    ({"seed": [0]}, "seed"),
    ({"lora": {"rank": "16"}}, "lora.rank"),
    ({"lora": {"learning_rate": "fast"}}, "lora.learning_rate"),
    ({"lora": {"seed": 3}}, "lora.seed"),
    ({"lora": {"ranks": 3}}, "lora.ranks"),
    ({"lora": {"save_dtype": "int8"}}, "lora.save_dtype"),
    ({"lora": {"target_modules": "q_proj"}}, "lora.target_modules"),
    ({"lora": 3}, "lora"),
    ({"sampling": {"max_new_tokens": 0}}, "sampling.max_new_tokens"),
    ({"sampling": {"stop_regex": "("}}, "sampling.stop_regex"),
    ({"sampling": {"temperature": 0.7}}, "sampling.temperature"),
])
def test_config_errors_name_the_key(changes, key):
    with pytest.raises(E.ConfigError) as info:
        parse(**changes)
    message = str(info.value)
    assert f"'{key}'" in message and "exp.toml" in message, message


def test_config_suggests_a_close_key_and_parses_defaults():
    with pytest.raises(E.ConfigError, match="did you mean 'seeds'"):
        parse(seed=[0])
    config = parse()
    assert config.strategies == ("random", "grape", "max_teacher_count", "min_teacher_count", "longest")
    assert config.seeds == (0,) and config.beta is None and config.segmenter == "paper"
    assert config.checker == "strict_final" and config.only_correct is True
    assert config.out == Path("out") and config.teacher_corpus == Path("tc")
    assert E.parse_config({**BASE}, "exp.toml", out=Path("elsewhere")).out == Path("elsewhere")
    assert E.parse_config({k: v for k, v in BASE.items() if k != "out"}, "x", out=Path("o")).out == Path("o")


def test_steps_config_is_the_lineages_student_recipe_for_one_epoch():
    from rdpt_lab import lineage

    config = E.load_config(REPO / "rdpt_lab" / "configs" / "steps_selection.toml")
    want = lineage._student_lora(0)
    assert config.lora.epochs == 1 and want.epochs == 2  # one epoch: five LoRAs in the time budget
    assert {f.name: getattr(config.lora, f.name) for f in fields(want) if f.name not in ("seed", "epochs")} == \
        {f.name: getattr(want, f.name) for f in fields(want) if f.name not in ("seed", "epochs")}
    assert config.student == "gemma3-270m" and config.checker == "strict_final"
    assert config.teacher_corpus == Path("demo/steps/teacher_corpus")
    assert config.test_questions == Path("demo/steps/test_questions.jsonl")
    assert config.out == Path("demo/steps/selection")
    assert config.strategies == ("random", "grape", "max_teacher_count", "min_teacher_count", "longest")
    assert config.seeds == (0,) and config.beta is None and config.only_correct is True
    assert (config.sampling.max_new_tokens, config.sampling.batch_size) == (256, 32)
    assert config.sampling.stop_regex == lineage.STOP_REGEX


# ---- test questions and checkers -----------------------------------------------------------------
def test_test_questions_are_checked_line_by_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"question_id": "a", "prompt": "p", "answer": 3}\n{"question_id": "b", "prompt": "p"}\n')
    with pytest.raises(E.ConfigError, match=r"t.jsonl, line 2: .*'answer'"):
        E.load_test_questions(path, "strict_final")
    path.write_text('{"question_id": "a", "prompt": "p", "answer": "x/2"}\n')
    with pytest.raises(E.ConfigError, match=r"line 1: .*integer"):
        E.load_test_questions(path, "strict_final")
    assert E.load_test_questions(path, "math_verify")[0].answer == "x/2"
    path.write_text('{"question_id": "a", "prompt": "p", "answer": "7"}\n{"question_id": "a", "prompt": "q", '
                    '"answer": 1}\n')
    with pytest.raises(E.ConfigError, match=r"line 2: .*duplicate question_id 'a'"):
        E.load_test_questions(path, "strict_final")
    with pytest.raises(E.ConfigError, match="'test_questions'"):
        E.load_test_questions(tmp_path / "missing.jsonl", "strict_final")


@pytest.mark.parametrize("checker, response, answer, correct", [
    ("strict_final", "3 + 4 = 7. The answer is 7.", 7, True),
    ("strict_final", "The answer is 7. Then 8.", 7, False),  # must end with the statement
    ("strict_final", "So it is 7", 7, False),
    ("math_verify", "The answer is $\\frac{1}{2}$.", "0.5", True),
    ("math_verify", "The answer is 8.", "7", False),
])
def test_checkers(checker, response, answer, correct):
    assert E.check_response(response, answer, checker) is correct


@pytest.mark.parametrize("checker", ["strict_final", "math_verify"])
def test_a_cut_answer_is_wrong_under_the_strict_rule_only(monkeypatch, checker):
    from rdpt_core.backends.base import Generated

    # the token limit fell right after "The answer is 7." (no EOS, no stop match seen)
    monkeypatch.setattr(E, "generate", lambda *a, **k: [[Generated("3 + 4 = 7. The answer is 7.", True)],
                                                          [Generated("3 + 5 = 8. The answer is 8.", False)]])
    questions = [E.EvalQuestion("a", "p", 7), E.EvalQuestion("b", "q", 8)]
    records = E.greedy_answers(None, questions, E.EvalSampling(), checker, "x")  # type: ignore[arg-type]
    assert [(r.correct, r.meta["truncated"]) for r in records] == [(checker == "math_verify", True), (True, False)]


# ---- β and selection (no model) ------------------------------------------------------------------
def experiment_config(tmp_path: Path, corpus: Path, **changes) -> E.ExperimentConfig:
    data = {"student": "some/model", "teacher_corpus": str(corpus), "test_questions": str(tmp_path / "t.jsonl"),
            "out": str(tmp_path / "out"), **changes}
    return E.parse_config(data, "exp.toml")


def test_beta_auto_is_the_beta_pages_rule(tmp_path):
    from rdpt_core import stats
    from rdpt_core.store import load_corpus

    responses = design()
    corpus_dir = save_design(responses, tmp_path / "tc")
    chosen = E.Experiment(experiment_config(tmp_path, corpus_dir), log=lambda m: None).choose_beta()
    correct = [r for r in responses if r.correct]
    assert chosen == pytest.approx(hand_beta(correct))
    # and what rdpt_core.stats says, called directly on the correct responses' action table
    table = load_corpus(corpus_dir).actions("paper")
    table = table[table["correct"].astype(bool)]
    direct = stats.suggest_beta(stats.beta_overlaps(table, 0.1, stats.beta_grid(), 10, "cls3"))
    assert chosen == direct
    saved = json.loads((tmp_path / "out" / "beta.json").read_text())
    assert saved["beta"] == chosen and saved["mode"] == "auto" and saved["candidates"] == len(correct)
    fixed = E.Experiment(experiment_config(tmp_path, corpus_dir, beta=0.12, out=str(tmp_path / "o2")),
                         log=lambda m: None)
    assert fixed.choose_beta() == 0.12


def test_each_strategy_keeps_one_correct_answer_per_question(tmp_path):
    from rdpt_core.selection import response_features, select
    from rdpt_core.store import load_corpus

    responses = design()
    corpus_dir = save_design(responses, tmp_path / "tc")
    actions = load_corpus(corpus_dir).actions("paper")
    assert actions.groupby("record_id").size().to_dict() == {r.record_id: len(r.actions) for r in responses}
    exp = E.Experiment(experiment_config(tmp_path, corpus_dir, beta=0.1, selection_seed=4), log=lambda m: None)
    exp.choose_beta()
    exp.select_all()
    by_id = {r.record_id: r for r in responses}
    correct = [r for r in responses if r.correct]
    rows = {s: [json.loads(line) for line in (tmp_path / "out" / "selected" / f"{s}.jsonl").read_text().splitlines()]
            for s in E.DEFAULT_STRATEGIES}
    for strategy, picked in rows.items():
        assert [row["question_id"] for row in picked] == ["q0", "q1", "q2"], strategy
        assert all(by_id[row["record_id"]].correct for row in picked), strategy
        assert all(row["prompt"] and row["response"] == by_id[row["record_id"]].text() for row in picked)
    rules = {
        "max_teacher_count": (lambda r: n_teacher(r, 0.1), True),
        "min_teacher_count": (lambda r: n_teacher(r, 0.1), False),
        "longest": (n_tokens, True),
        "grape": (mean_logp_student, True),
    }
    for strategy, (key, largest) in rules.items():
        want = [first_best([r for r in correct if r.question_id == q], key, largest).record_id
                for q in ("q0", "q1", "q2")]
        assert [row["record_id"] for row in rows[strategy]] == want, strategy
        assert [row["rdpt_n_teacher"] for row in rows[strategy]] == [n_teacher(by_id[i], 0.1) for i in want]
        assert [row["rdpt_n_tokens"] for row in rows[strategy]] == [n_tokens(by_id[i]) for i in want]
    # random: seeded by selection_seed, drawn among the correct responses only
    table = actions[actions["record_id"].isin([r.record_id for r in correct])]
    assert [row["record_id"] for row in rows["random"]] == \
        select(response_features(table, 0.1), "random", 4)["record_id"].tolist()


def test_selection_needs_teacher_and_student_scores(tmp_path):
    from rdpt_core.store import load_corpus, save_corpus

    corpus_dir = save_design(design(), tmp_path / "tc")
    corpus = load_corpus(corpus_dir)
    save_corpus(replace(corpus, tokens={"teacher": corpus.tokens["teacher"]}, models={"teacher": "T"}),
                tmp_path / "t_only")
    exp = E.Experiment(experiment_config(tmp_path, tmp_path / "t_only"), log=lambda m: None)
    with pytest.raises(E.ConfigError, match="'teacher_corpus'.*student"):
        exp.choose_beta()
    missing = E.Experiment(experiment_config(tmp_path, tmp_path / "nowhere"), log=lambda m: None)
    with pytest.raises(E.ConfigError, match="'teacher_corpus'.*nowhere"):
        missing.choose_beta()


# ---- the results table ---------------------------------------------------------------------------
def row(strategy: str, k: int, n: int, seed: int = 0) -> dict:
    lo, hi = wilson(k, n)
    return {"strategy": strategy, "seed": seed, "n_train": 10, "mean_teacher_actions": 2.5, "mean_tokens": 40.0,
            "n_test": n, "correct": k, "accuracy": k / n, "wilson95": [lo, hi], "truncated": 1}


def test_conclusion_says_whether_best_and_worst_intervals_overlap():
    apart = [row("max_teacher_count", 90, 100), row("random", 70, 100), row("longest", 50, 100)]
    assert wilson(90, 100)[0] > wilson(50, 100)[1]  # the premise, by hand
    text = E.conclusion(apart)
    assert "max_teacher_count" in text and "longest" in text and "do not overlap" in text
    close = [row("max_teacher_count", 6, 10), row("longest", 5, 10)]
    assert wilson(6, 10)[0] < wilson(5, 10)[1]
    text = E.conclusion(close)
    assert "overlap" in text and "do not overlap" not in text and "cannot" in text
    assert "Both strategies have the same accuracy" in E.conclusion([row("a", 3, 10), row("b", 3, 10)])
    assert "All 3 strategies" in E.conclusion([row("a", 3, 10), row("b", 3, 10), row("c", 3, 10)])
    assert "one strategy" in E.conclusion([row("a", 3, 10)])
    # several seeds: a strategy's answers are pooled over them
    pooled = E.conclusion([row("a", 9, 10, 0), row("a", 8, 10, 1), row("b", 1, 10, 0), row("b", 2, 10, 1)])
    assert wilson(17, 20)[0] > wilson(3, 20)[1] and "do not overlap" in pooled and "2 seeds" in pooled


def test_results_markdown_has_one_line_per_row():
    text = E.results_markdown([row("max_teacher_count", 2, 3), row("random", 0, 3, seed=1)])
    lines = text.strip().splitlines()
    assert lines[0].startswith("| strategy | seed | n_train |") and len(lines) == 4
    assert "| max_teacher_count | 0 | 10 |" in lines[2] and "66.7% (2/3)" in lines[2]
    lo, hi = wilson(2, 3)
    assert f"[{100 * lo:.1f}%, {100 * hi:.1f}%]" in lines[2]


# ---- python -m rdpt_lab ------------------------------------------------------------------------
def test_results_json_is_read_back_checked_and_as_a_frame():
    rows = [row("max_teacher_count", 9, 10), row("random", 0, 10, seed=1)]
    rows[1]["accuracy"], rows[1]["wilson95"] = None, None  # e.g. no test answers yet
    results = E.read_results(json.dumps({"beta": 0.1, "rows": rows}), "mine.json")
    frame = E.results_frame(results)
    assert frame.columns.tolist() == ["strategy", "seed", "n_train", "mean_teacher_actions", "mean_tokens", "n_test",
                                      "correct", "accuracy", "truncated", "ci_low", "ci_high"]
    assert frame["strategy"].tolist() == ["max_teacher_count", "random"]
    assert frame.loc[0, ["accuracy", "ci_low", "ci_high"]].tolist() == [0.9, *wilson(9, 10)]
    assert frame.loc[1, ["accuracy", "ci_low", "ci_high"]].isna().all()


@pytest.mark.parametrize("text, message", [
    ("{", r"mine.json: not JSON"),
    ('{"beta": 0.1}', r"mine.json: not a selection-experiment result"),
    (json.dumps({"rows": [row("a", 1, 2), {"strategy": "b"}]}), r"mine.json: row 2 lacks seed, n_train"),
    (json.dumps({"rows": [{**row("a", 1, 2), "correct": 3}]}), r"row 1: correct = 3 is not an integer from 0 to n_test"),
    (json.dumps({"rows": [{**row("a", 1, 2), "seed": "0", "wilson95": [0.1]}]}),
     r"row 1: seed = '0' is not an integer; wilson95 = \[0.1\] is not a \[low, high\] pair"),
])
def test_results_json_errors_name_the_file_row_and_field(text, message):
    with pytest.raises(ValueError, match=message):
        E.read_results(text, "mine.json")


def test_module_entry_dispatches(monkeypatch):
    import rdpt_lab.__main__ as entry
    from rdpt_lab import lineage

    seen = []
    monkeypatch.setattr(lineage, "main", lambda argv=None: seen.append(("lab", argv)) or 0)
    monkeypatch.setattr(E, "main", lambda argv=None: seen.append(("exp", argv)) or 0)
    assert entry.main(["score", "--redo"]) == 0 and entry.main(["selection-experiment", "--config", "c.toml"]) == 0
    monkeypatch.setattr("sys.argv", ["python -m rdpt_lab"])
    assert entry.main() == 0
    assert seen == [("lab", ["score", "--redo"]), ("exp", ["--config", "c.toml"]), ("lab", [])]


# ---- end to end on a tiny random model -----------------------------------------------------------
def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def adapter_name(out_dir: Path) -> str:
    """``<strategy>-s<seed>`` of the directory train_lora writes (whatever temporary suffix)."""
    match = re.match(r"[a-z_]+-s\d+", Path(out_dir).name)
    assert match, out_dir
    return match.group(0)


STRICT = re.compile(r"the answer is\s+(-?\d[\d,]*)\s*\.?\s*$", re.IGNORECASE)


@pytest.mark.slow  # ~45 s on a busy 2-core CPU: 6 LoRA trainings and evaluations of a tiny model
def cut_by_limit(base: Path, adapter: Path, prompt: str, max_new_tokens: int = 8) -> bool:
    """Greedy decoding with plain transformers + peft: did the answer use every allowed token
    without an end token or a stated answer?"""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    context = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                            add_generation_prompt=True)
    ids = tokenizer(context, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        new = model.generate(input_ids=ids, max_new_tokens=max_new_tokens, do_sample=False)[0, ids.shape[1]:].tolist()
    ended = tokenizer.eos_token_id in new or STRICT.search(tokenizer.decode(new, skip_special_tokens=True).strip())
    return len(new) == max_new_tokens and not ended


def test_end_to_end_kill_resume_and_skip(tmp_path, tiny, monkeypatch):

    responses = design()
    corpus_dir = save_design(responses, tmp_path / "tc")
    questions = [{"question_id": f"t{i}", "prompt": f"Tom has {i + 2} apples. How many?", "answer": i + 2}
                 for i in range(3)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    strategies, seeds = ["max_teacher_count", "longest", "random"], [0, 1]
    (tmp_path / "exp.toml").write_text(f"""
student = '{tiny}'
teacher_corpus = '{corpus_dir}'
test_questions = '{tmp_path / "t.jsonl"}'
out = '{tmp_path / "out"}'
strategies = {json.dumps(strategies)}
seeds = {json.dumps(seeds)}
beta = "auto"
[lora]
rank = 4
alpha = 8
epochs = 1
batch_size = 2
save_dtype = "bfloat16"
checkpoint_every = 1  # a checkpoint before the adapters' folder exists (a real run's first step)
[sampling]
max_new_tokens = 8
batch_size = 4
stop_regex = '[Tt]he answer is\\s+-?\\d+\\.?'
""")
    config = E.load_config(tmp_path / "exp.toml")
    out = config.out
    real, calls = E.train_lora, []

    def killed_at_second(student, pairs, settings, out_dir, log=print):
        calls.append(adapter_name(out_dir))
        if len(calls) == 2:
            raise RuntimeError("simulated kill")
        return real(student, pairs, settings, out_dir, log=log)

    monkeypatch.setattr(E, "train_lora", killed_at_second)
    with pytest.raises(RuntimeError, match="simulated kill"):
        E.Experiment(config, log=lambda m: None).run()
    first = out / "adapters" / "max_teacher_count-s0"
    assert (first / "adapter_config.json").exists() and (out / "eval" / "max_teacher_count-s0.jsonl").exists()
    assert not (first / "README.md").exists()  # peft writes one; not part of the adapter
    assert not (out / "adapters" / "max_teacher_count-s1").exists()
    kept = {p: t for p, t in mtimes(out).items() if p.startswith(("adapters/max_teacher_count-s0/", "eval/"))}

    calls.clear()
    monkeypatch.setattr(E, "train_lora", lambda *a, **k: (calls.append(adapter_name(a[3])), real(*a, **k))[1])
    exp = E.Experiment(config, log=lambda m: None)
    results = exp.run()
    assert sorted(calls) == sorted(f"{s}-s{seed}" for s in strategies for seed in seeds if (s, seed) !=
                                   ("max_teacher_count", 0))
    assert {p: t for p, t in mtimes(out).items() if p in kept} == kept, "a finished adapter or eval was redone"
    assert "train:max_teacher_count-s0" in exp.skipped and "beta" in exp.skipped

    # the table, recomputed here from the eval files, the selections and the corpus design
    saved = json.loads((out / "results.json").read_text())
    assert saved == results
    assert [(r["strategy"], r["seed"]) for r in saved["rows"]] == [(s, seed) for s in strategies for seed in seeds]
    beta = hand_beta([r for r in responses if r.correct])
    assert saved["beta"] == pytest.approx(beta)
    by_id = {r.record_id: r for r in responses}
    for r in saved["rows"]:
        name = f"{r['strategy']}-s{r['seed']}"
        evals = [json.loads(line) for line in (out / "eval" / f"{name}.jsonl").read_text().splitlines()]
        assert [e["question_id"] for e in evals] == ["t0", "t1", "t2"]
        right = [bool((m := STRICT.search(e["response"].strip())) and int(m.group(1).replace(",", "")) ==
                      int(e["question_id"][1:]) + 2) for e in evals]
        assert [e["correct"] for e in evals] == right
        k = sum(right)
        assert (r["n_test"], r["correct"]) == (3, k) and r["accuracy"] == pytest.approx(k / 3, abs=1e-4)
        assert r["wilson95"] == pytest.approx(wilson(k, 3), abs=1e-4)
        assert r["truncated"] == sum(cut_by_limit(tiny, out / "adapters" / name, e["prompt"]) for e in evals)
        picked = [json.loads(line)["record_id"] for line in
                  (out / "selected" / f"{r['strategy']}.jsonl").read_text().splitlines()]
        assert r["n_train"] == 3
        assert r["mean_teacher_actions"] == pytest.approx(np.mean([n_teacher(by_id[i], beta) for i in picked]))
        assert r["mean_tokens"] == pytest.approx(np.mean([n_tokens(by_id[i]) for i in picked]))
        training = json.loads((out / "adapters" / name / "training.json").read_text())
        assert training["examples"] == 3 and training["settings"]["seed"] == r["seed"]
        assert training["settings"]["rank"] == 4
    correct = [r for r in responses if r.correct]
    for strategy, key in (("max_teacher_count", lambda x: n_teacher(x, beta)), ("longest", n_tokens)):
        want = [first_best([r for r in correct if r.question_id == q], key).record_id for q in ("q0", "q1", "q2")]
        got = [json.loads(line)["record_id"] for line in (out / "selected" / f"{strategy}.jsonl").read_text().splitlines()]
        assert got == want, strategy
    assert saved["conclusion"] == E.conclusion(saved["rows"])
    markdown = (out / "results.md").read_text()
    assert E.results_markdown(saved["rows"]) in markdown and saved["conclusion"] in markdown
    manifest = json.loads((out / "experiment.json").read_text())
    assert {"beta", "table", *(f"train:{s}-s{seed}" for s in strategies for seed in seeds)} <= \
        set(manifest["stage_seconds"])

    # a third run redoes nothing and rewrites no file
    calls.clear()
    before = mtimes(out)
    again = E.Experiment(config, log=lambda m: None)
    assert again.run() == results
    assert again.ran == [] and calls == [] and mtimes(out) == before

    # --only-table rebuilds the table from the outputs alone; another recipe in the same out is refused
    (out / "results.json").unlink()
    assert E.main(["--config", str(tmp_path / "exp.toml"), "--only-table"]) == 0
    assert json.loads((out / "results.json").read_text()) == results
    other = replace(config, lora=replace(config.lora, learning_rate=1e-2))
    with pytest.raises(E.ConfigError, match="learning_rate"):
        E.Experiment(other, log=lambda m: None).run()
