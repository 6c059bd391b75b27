"""Teacher-guided data selection (docs/method.md §11, paper section 4): one response per question.

Input: an action table of several teacher responses per question scored by the teacher and
the student only. Per response: the number and share of ``Teacher`` actions under the 3-class
rule with β, the number of actions, the length in the student's tokens and the student's mean
token log-prob. Strategies keep one response per question:

* ``max_teacher_count`` – most Teacher actions (the paper's method);
* ``longest`` – most student tokens;
* ``max_teacher_proportion`` / ``min_teacher_count`` – highest Teacher share / fewest Teacher actions;
* ``random`` – uniformly, seeded;
* ``grape`` – highest length-normalised student log-likelihood (Zhang et al., 2025).

With several teachers (docs/method.md §18) ``p_teacher`` is the best teacher's, so
``max_teacher_count`` picks the answer with the most actions from *any* teacher; and

* ``teacher_quota`` – the same, but each writer (the ``source`` of the answer: which teacher
  wrote it) gets at most an equal share of the questions, ⌈questions / writers⌉: questions are
  served strongest first (their best answer's Teacher count, then question order), each takes
  its best answer whose writer has quota left, or its best answer when none has.

Ties go to the response that comes first in the input (stable order). A response with no
scored action has an undefined share and mean log-prob (NaN): it loses to any defined value.

The export (:func:`export_rows`) writes each chosen response in its input's own schema (see
:meth:`rdpt_core.records.Origin.original_row`) plus ``rdpt_*`` score columns.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .provenance import TEACHER, UNSCORED, classify3
from .records import Origin, Record, export_row

STRATEGIES = ("max_teacher_count", "longest", "max_teacher_proportion", "min_teacher_count", "random", "grape")
ENSEMBLE_STRATEGIES = ("teacher_quota",)  # for answers written by several teachers
_RULES = {  # strategy -> (feature column, pick the largest?)
    "max_teacher_count": ("n_teacher", True),
    "longest": ("n_tokens", True),
    "max_teacher_proportion": ("teacher_share", True),
    "min_teacher_count": ("n_teacher", False),
    "grape": ("student_mean_logp", True),
}


def response_features(actions: pd.DataFrame, beta: float) -> pd.DataFrame:
    """One row per response (input order): question_id, source (only when the answers come from
    two sources or more: which writer, for ``teacher_quota``), n_teacher, teacher_share,
    n_actions, n_tokens (student), student_mean_logp."""
    cls = classify3(actions["p_teacher"], actions["p_student"], beta)
    frame = actions.assign(is_teacher=cls == TEACHER, scored=cls != UNSCORED)
    grouped = frame.groupby("record_id", sort=False)
    out = pd.DataFrame({
        "question_id": grouped["question_id"].first(),
        **({"source": grouped["source"].first()} if _writers(frame) >= 2 else {}),
        "n_teacher": grouped["is_teacher"].sum().astype(np.int64),
        "n_scored": grouped["scored"].sum().astype(np.int64),
        "n_actions": grouped.size().astype(np.int64),
        "n_tokens": grouped["n_tokens_student"].sum().astype(np.int64),
        "sum_logp": grouped["sum_logp_student"].sum(),
    })
    with np.errstate(invalid="ignore", divide="ignore"):
        out["teacher_share"] = out["n_teacher"] / out["n_scored"]
        out["student_mean_logp"] = out["sum_logp"] / out["n_tokens"]
    return out.drop(columns="sum_logp").reset_index()


def _writers(actions: pd.DataFrame) -> int:
    """How many sources wrote the answers (a missing source counts as one more)."""
    return int(actions["source"].nunique(dropna=False)) if "source" in actions.columns else 0


def has_candidates(actions: pd.DataFrame) -> bool:
    """Can this table be selected from: scored by T and S, some question with several answers?"""
    if not {"p_teacher", "p_student", "question_id"} <= set(actions.columns):
        return False
    return bool((actions.groupby("question_id")["record_id"].nunique() > 1).any())


def select(features: pd.DataFrame, strategy: str, seed: int = 0) -> pd.DataFrame:
    """The chosen response per question (rows of ``features``, one per question, question order
    of first appearance)."""
    if strategy not in STRATEGIES + ENSEMBLE_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES + ENSEMBLE_STRATEGIES)}")
    ordered = features.reset_index(drop=True)
    if strategy == "teacher_quota":
        return _with_quotas(ordered)
    if strategy == "random":
        rng = np.random.default_rng(seed)
        picks = [rng.choice(idx.to_numpy()) for _, idx in ordered.groupby("question_id", sort=False).groups.items()]
        return ordered.loc[picks].reset_index(drop=True)
    column, largest = _RULES[strategy]
    key = ordered[column].fillna(-np.inf if largest else np.inf)
    key = -key if largest else key
    # stable sort by (question, key) keeps input order among equal keys: the first one wins
    order = ordered.assign(_key=key, _q=ordered.groupby("question_id", sort=False).ngroup())
    best = order.sort_values(["_q", "_key"], kind="stable").groupby("_q").head(1)
    return best.drop(columns=["_key", "_q"]).reset_index(drop=True)


def _with_quotas(features: pd.DataFrame) -> pd.DataFrame:
    """``teacher_quota`` (module docstring)."""
    if "source" not in features.columns:
        raise ValueError("teacher_quota needs answers from two or more writers (their source: the teacher "
                         "that wrote each answer); these all have one source")
    if features["source"].isna().any():
        raise ValueError("teacher_quota needs every answer's source (the teacher that wrote it)")
    ranked = features.assign(_q=features.groupby("question_id", sort=False).ngroup())
    ranked = ranked.sort_values(["_q", "n_teacher"], ascending=[True, False], kind="stable")
    candidates = {q: group for q, group in ranked.groupby("_q", sort=True)}
    strongest_first = sorted(candidates, key=lambda q: (-candidates[q]["n_teacher"].iloc[0], q))
    left = dict.fromkeys(features["source"].unique(), -(-len(candidates) // features["source"].nunique()))
    chosen = {}
    for q in strongest_first:
        group = candidates[q]
        open_rows = group[group["source"].map(left) > 0]
        pick = (open_rows if len(open_rows) else group).index[0]
        left[features.at[pick, "source"]] -= 1
        chosen[q] = pick
    return features.loc[[chosen[q] for q in sorted(chosen)]].reset_index(drop=True)


def strategies_for(features: pd.DataFrame) -> tuple[str, ...]:
    """The strategies that apply: all of :data:`STRATEGIES`, and :data:`ENSEMBLE_STRATEGIES`
    when every answer names its writer (``source``) and there are two writers or more."""
    sources = features["source"] if "source" in features.columns else pd.Series(dtype=object)
    several = len(sources) > 0 and not sources.isna().any() and sources.nunique() >= 2
    return STRATEGIES + ENSEMBLE_STRATEGIES if several else STRATEGIES


def picks_by_strategy(features: pd.DataFrame, strategies=STRATEGIES, seed: int = 0) -> pd.DataFrame:
    """Every strategy's picks stacked, with a ``strategy`` column (for the distributions)."""
    return pd.concat([select(features, s, seed).assign(strategy=s) for s in strategies], ignore_index=True)


BOX_QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)  # min, Q1, median, Q3, max


def box_plot_points(picks: pd.DataFrame, columns: tuple[str, ...] = ("n_tokens", "teacher_share")) -> pd.DataFrame:
    """Per strategy (order of appearance), five rows: the min, Q1, median, Q3 and max of each of
    ``columns`` over its picks (NaN left out), with a ``strategy`` column.

    A min–max box plot of these rows is the box plot of every pick: Vega-Lite's quartiles
    interpolate linearly between order statistics, as pandas' do, and the quartiles of five
    sorted values are the 2nd, 3rd and 4th. So the selection chart embeds 5 rows per strategy
    instead of one per question (on 10,000 responses, 15,000 rows took seconds to embed)."""
    points = picks.groupby("strategy", sort=False)[list(columns)].quantile(list(BOX_QUANTILES))
    return points.reset_index(level="strategy").reset_index(drop=True)


SCORE_COLUMNS = ("n_teacher", "teacher_share", "n_actions", "n_tokens", "student_mean_logp")


def export_rows(picked: pd.DataFrame, records: list[Record], origins: dict[str, Origin],
                strategy: str, beta: float) -> list[dict]:
    """The chosen responses as rows of the input's own schema plus ``rdpt_strategy``,
    ``rdpt_beta`` and ``rdpt_<feature>`` for every feature in :data:`SCORE_COLUMNS`."""
    by_id = {r.record_id: r for r in records}
    missing = [rid for rid in picked["record_id"] if rid not in by_id]
    if missing:
        raise ValueError(f"picked record(s) not among the input records: {', '.join(missing[:5])}")
    rows = []
    for pick in picked.itertuples(index=False):
        extra = {"rdpt_strategy": strategy, "rdpt_beta": float(beta)}
        extra.update({f"rdpt_{c}": _plain_number(getattr(pick, c)) for c in SCORE_COLUMNS})
        rows.append(export_row(by_id[pick.record_id], origins.get(pick.record_id), extra))
    return rows


def _plain_number(value) -> int | float | None:
    if isinstance(value, (np.integer, int)):
        return int(value)
    value = float(value)
    return None if np.isnan(value) else value


def kept_per_question(picks: pd.DataFrame) -> pd.DataFrame:
    """Question × strategy → the record each strategy kept (``picks`` from :func:`picks_by_strategy`;
    questions and strategies in their order of appearance)."""
    table = picks.pivot(index="question_id", columns="strategy", values="record_id")
    return table.reindex(index=list(dict.fromkeys(picks["question_id"])),
                         columns=list(dict.fromkeys(picks["strategy"])))


def strategy_summary(picks: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, the mean features of the responses it kept."""
    columns = ["n_tokens", "teacher_share", "n_teacher", "student_mean_logp"]
    return picks.groupby("strategy", sort=False)[columns].mean().add_prefix("mean ")


def agreement(picks: pd.DataFrame) -> pd.DataFrame:
    """Share of questions on which two strategies keep the same response (symmetric matrix;
    ``picks`` from :func:`picks_by_strategy`)."""
    kept = kept_per_question(picks)
    strategies = list(kept.columns)
    out = pd.DataFrame(1.0, index=strategies, columns=strategies)
    for a, b in itertools.combinations(strategies, 2):
        out.loc[a, b] = out.loc[b, a] = float((kept[a] == kept[b]).mean())
    return out
