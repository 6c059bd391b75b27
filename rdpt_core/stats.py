"""Corpus statistics over a classified action table (docs/method.md §9, §10), vectorised with pandas.

All functions take the action table with a class column (``cls`` or ``cls3``); ``Unscored``
actions are left out of every denominator.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .provenance import EPS, TEACHER, UNSCORED, class_column, classify_table

Z95 = 1.959963984540054


def wilson(k, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes out of n (arrays); NaN where n == 0."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def _scored(table: pd.DataFrame, column: str) -> pd.DataFrame:
    return table[table[column] != UNSCORED]


def _answer_group(correct: pd.Series) -> pd.Series:
    return correct.map({True: "correct", False: "incorrect"}).fillna("unknown").astype(str)


ANSWER_GROUPS = ("correct", "incorrect", "unknown")  # sorted: the curves' row order


def _answer_codes(correct: pd.Series) -> np.ndarray:
    """Index into :data:`ANSWER_GROUPS` per row (unknown where the verdict is missing)."""
    verdict = correct.astype("boolean")
    return np.where(verdict.isna().to_numpy(), 2, np.where(verdict.fillna(False).to_numpy(bool), 0, 1))


def position_curves(table: pd.DataFrame, column: str = "cls", min_n: int = 10) -> pd.DataFrame:
    """Per action index j, answer group (correct / incorrect / unknown) and class c: the share of
    responses whose j-th action is of class c among those with a scored j-th action, with
    ``k``, ``n`` (responses) and the 95% Wilson band. Every position is kept; ``enough`` is
    ``n >= min_n`` (positions below it rest on few responses: see :func:`thin_positions_note`).
    Rows: the (answer group, j) pairs that occur, in that order, times every class that occurs,
    sorted."""
    columns = ["answer", "action_index", "cls", "k", "n", "share", "lo", "hi", "enough"]
    scored = _scored(table, column)
    if scored.empty:
        return pd.DataFrame(columns=columns)
    # counted over integer codes (answer × position × class): grouping a 400k-action table by
    # its strings was ~0.1 s of every slider step
    positions = scored["action_index"].to_numpy(np.int64)
    width = int(positions.max()) + 1
    pair = _answer_codes(scored["correct"]) * width + positions
    class_codes, classes = pd.factorize(scored[column], sort=True)
    n_classes = len(classes)
    n_pair = np.bincount(pair, minlength=len(ANSWER_GROUPS) * width)
    k_pair = np.bincount(pair * n_classes + class_codes, minlength=len(n_pair) * n_classes).reshape(-1, n_classes)
    seen = np.flatnonzero(n_pair)
    n = np.repeat(n_pair[seen], n_classes)
    k = k_pair[seen].ravel()
    lo, hi = wilson(k, n)
    return pd.DataFrame({
        "answer": pd.array(ANSWER_GROUPS, dtype="str").take(np.repeat(seen // width, n_classes)),
        "action_index": np.repeat(seen % width, n_classes), "cls": np.tile(np.asarray(classes), len(seen)),
        "k": k, "n": n, "share": k / n, "lo": lo, "hi": hi, "enough": n >= min_n,
    })


def mean_probability_curves(table: pd.DataFrame, min_n: int = 10) -> pd.DataFrame:
    """Mean p_T / p_S / p_D per action index (long format: action_index, role, p, n, enough);
    every position is kept, ``enough`` is ``n >= min_n``."""
    roles = [c for c in ("p_teacher", "p_student", "p_distilled") if c in table.columns]
    grouped = table.groupby("action_index")[roles]
    means, counts = grouped.mean(), grouped.count()
    long = means.stack().rename("p").reset_index().rename(columns={"level_1": "role"})
    long["n"] = counts.stack().to_numpy()
    long["role"] = long["role"].str.removeprefix("p_")
    long = long[long["n"] > 0]  # no probability of that role at j: no mean
    return long.assign(enough=long["n"] >= min_n).reset_index(drop=True)


def _ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0–2, 5, 7–8"``."""
    values = sorted({int(i) for i in indices})
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs)


def thin_positions_note(curves: pd.DataFrame, min_n: int) -> str | None:
    """A sentence naming the positions below ``min_n`` responses (``enough`` false) of
    :func:`position_curves` (per answer group) or :func:`mean_probability_curves`; ``None`` when
    every position has enough."""
    if curves.empty or bool(curves["enough"].all()):
        return None
    thin = curves.loc[~curves["enough"].astype(bool)]
    head = f"Fewer than {min_n} responses (drawn all the same; read them with care) at positions "
    if "answer" not in thin.columns:
        return head + _ranges(thin["action_index"]) + "."
    labels = {"correct": "correct responses", "incorrect": "incorrect responses",
              "unknown": "responses of unknown correctness"}
    groups = [f"{_ranges(thin.loc[thin['answer'] == answer, 'action_index'])} ({labels[answer]})"
              for answer in labels if (thin["answer"] == answer).any()]
    return head + "; ".join(groups) + "."


def token_marks(table: pd.DataFrame, step: int = 4000) -> pd.DataFrame:
    """Where the mean cumulative token count (``cum_tokens``) first reaches each multiple of
    ``step``: rows ``(tokens, action_index)``, for the paper's x-axis marks."""
    if "cum_tokens" not in table.columns or step <= 0:
        return pd.DataFrame(columns=["tokens", "action_index"])
    mean_cum = table.groupby("action_index")["cum_tokens"].mean().sort_index()
    running = mean_cum.cummax()  # later positions average fewer (longer) responses: keep it monotone
    marks = []
    for level in range(step, int(running.max()) + 1, step):
        marks.append((level, int(running.index[np.argmax(running.to_numpy() >= level)])))
    return pd.DataFrame(marks, columns=["tokens", "action_index"])


def response_proportions(table: pd.DataFrame, column: str = "cls") -> pd.DataFrame:
    """Per response, the share of its scored actions in each class (rows: record_id, sorted;
    columns: classes, sorted). One vectorised count: ``pd.crosstab(normalize="index")`` gives
    the same numbers but aggregates response by response in Python (~15× slower on 10k)."""
    scored = _scored(table, column)
    counts = scored.groupby(["record_id", column]).size().unstack(fill_value=0)
    return counts.div(counts.sum(axis=1), axis=0)


def histogram(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Normalised histogram of proportions on ``bins`` equal bins of [0, 1] (1.0 in the last)."""
    shares = np.asarray(values, dtype=float)
    shares = shares[(shares >= 0.0) & (shares <= 1.0)]  # NaN (no scored action) fails both
    # the bin a share opens, with the thresholds' tolerance (EPS): 0.3 * 10 is 2.9999999999999996
    # in binary, and numpy's histogram put a share of 3/10 in [0.2, 0.3)
    index = np.minimum(np.floor(shares * bins + EPS * bins), bins - 1).astype(np.int64)
    counts = np.bincount(index, minlength=bins)
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def overlap(h_a: np.ndarray, h_b: np.ndarray) -> float:
    """Σ_bins min(h_a, h_b) of two normalised histograms: 1 = identical, 0 = disjoint."""
    return float(np.minimum(h_a, h_b).sum())


def beta_overlaps(table: pd.DataFrame, alpha: float, betas: Sequence[float], bins: int = 10,
                  column: str = "cls") -> pd.DataFrame:
    """For each β: the classes' per-response proportion histograms and their pairwise overlaps.

    Rows: ``beta, class_a, class_b, overlap, top_pair`` where ``top_pair`` marks the two most
    frequent classes at that β (by number of actions)."""
    rows = []
    for beta in betas:
        classified = classify_table(table, alpha, float(beta))
        props = response_proportions(classified, column)
        counts = _scored(classified, column)[column].value_counts()
        top = set(counts.index[:2])
        hists = {c: histogram(props[c].to_numpy(), bins) for c in props.columns}
        for a, b in itertools.combinations(sorted(hists), 2):
            rows.append({"beta": float(beta), "class_a": a, "class_b": b,
                         "overlap": overlap(hists[a], hists[b]), "top_pair": {a, b} == top})
    return pd.DataFrame(rows, columns=["beta", "class_a", "class_b", "overlap", "top_pair"])


def suggest_beta(overlaps: pd.DataFrame) -> float | None:
    """The β whose two most frequent classes overlap least (ties: the smaller β)."""
    # astype(bool): an empty table's object-dtype column would index columns, not rows
    top = overlaps[overlaps["top_pair"].astype(bool)].sort_values(["overlap", "beta"])
    return None if top.empty else float(top["beta"].iloc[0])


def beta_grid(start: float = 0.05, stop: float = 0.20, step: float = 0.05) -> list[float]:
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 10) for i in range(n)]


MIN_RESPONSES = 5  # a group with fewer responses gets no test
CORRECT_VS_INCORRECT_CAPTION = (
    "Unit: responses. Each response with a verdict counts once: per class, the share of its scored "
    "actions in that class. responses_correct / responses_incorrect count responses; the mean shares "
    "are means over those responses. U and p: two-sided Mann–Whitney U test of the correct against "
    f"the incorrect responses' shares (no test when a group has fewer than {MIN_RESPONSES} responses).")


def correct_vs_incorrect(table: pd.DataFrame, column: str = "cls", min_responses: int = MIN_RESPONSES) -> pd.DataFrame:
    """Per class, correct against incorrect *responses*: the unit is the response, not the action.

    Each response with a known verdict and at least one scored action gives one number per class,
    the share of its scored actions in that class; so a long response weighs as much as a short
    one, and the actions of one response are not taken for independent trials. Per class:

    * ``responses_correct`` / ``responses_incorrect``: how many responses each group has;
    * ``mean_share_correct_responses`` / ``mean_share_incorrect_responses``: the mean of those
      shares over the group's responses, and ``difference_correct_minus_incorrect``;
    * ``mann_whitney_u`` and ``p_value``: a two-sided Mann–Whitney U test of the two groups'
      shares (:func:`scipy.stats.mannwhitneyu` with its default method: exact for small groups
      without ties, else the normal approximation with tie and continuity corrections). U counts
      the (correct, incorrect) pairs of responses where the correct one's share is larger, ties ½;
    * ``note``: why there is no test (a group with fewer than ``min_responses`` responses: U and
      p are NaN), else empty.
    """
    from scipy.stats import mannwhitneyu

    columns = ["cls", "responses_correct", "responses_incorrect", "mean_share_correct_responses",
               "mean_share_incorrect_responses", "difference_correct_minus_incorrect", "mann_whitney_u",
               "p_value", "note"]
    scored = _scored(table, column)
    if scored.empty:
        return pd.DataFrame(columns=columns)
    shares = response_proportions(scored, column)
    verdict = _answer_group(scored.groupby("record_id")["correct"].first()).reindex(shares.index)
    groups = {g: shares[(verdict == g).to_numpy()] for g in ("correct", "incorrect")}
    sizes = {g: len(d) for g, d in groups.items()}
    small = [f"{sizes[g]} {g} response{'' if sizes[g] == 1 else 's'}" for g in groups if sizes[g] < min_responses]
    note = f"no test: {' and '.join(small)} (fewer than {min_responses})" if small else ""
    rows = []
    for cls in sorted(shares.columns):
        x, y = groups["correct"][cls].to_numpy(float), groups["incorrect"][cls].to_numpy(float)
        mean_x = float(x.mean()) if len(x) else float("nan")
        mean_y = float(y.mean()) if len(y) else float("nan")
        u = p = float("nan")
        if not small:
            result = mannwhitneyu(x, y, alternative="two-sided")
            u, p = float(result.statistic), float(result.pvalue)
        rows.append({"cls": cls, "responses_correct": sizes["correct"], "responses_incorrect": sizes["incorrect"],
                     "mean_share_correct_responses": mean_x, "mean_share_incorrect_responses": mean_y,
                     "difference_correct_minus_incorrect": mean_x - mean_y, "mann_whitney_u": u, "p_value": p,
                     "note": note})
    return pd.DataFrame(rows, columns=columns)


def proportions_by_beta(table: pd.DataFrame, alpha: float, betas: Sequence[float], column: str = "cls") -> pd.DataFrame:
    """Long table ``beta, record_id, cls, proportion`` of per-response class shares, per β."""
    frames = []
    for beta in betas:
        props = response_proportions(classify_table(table, alpha, float(beta)), column)
        long = props.reset_index().melt(id_vars="record_id", var_name="cls", value_name="proportion")
        frames.append(long.assign(beta=float(beta)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["record_id", "cls", "proportion", "beta"])


# ---- several teachers (docs/method.md §18) ------------------------------------------------------
def teacher_origin(classified: pd.DataFrame) -> pd.Series:
    """Per action, the teacher it is attributed to (``teacher_of``) or else its class: one
    column in which each teacher's actions, "Several teachers" and the other classes are
    apart. Needs a classified several-teacher table."""
    if "teacher_of" not in classified.columns:
        raise ValueError("no teacher_of column: classify a table scored with several named teachers")
    return classified["teacher_of"].fillna(classified[class_column(classified)])


def teacher_position_curves(classified: pd.DataFrame, min_n: int = 10) -> pd.DataFrame:
    """:func:`position_curves` with each teacher's actions as a class of its own: per action
    index and answer group, the share of responses whose j-th action is attributed to each
    teacher (unit: responses, as for the classes)."""
    return position_curves(classified.assign(origin=teacher_origin(classified)), "origin", min_n)


def teacher_shares(classified: pd.DataFrame) -> pd.DataFrame:
    """How the Teacher actions split among the teachers (and "Several teachers"): per label,
    ``actions`` and ``share`` of all Teacher actions (pooled actions), ``responses`` holding
    at least one, and ``mean_response_share``: the mean over responses with Teacher actions
    of the label's share of that response's Teacher actions (unit: responses, so a long
    response does not outweigh the others)."""
    columns = ["teacher_of", "actions", "share", "responses", "mean_response_share"]
    teacher = classified[(classified[class_column(classified)] == TEACHER) & classified["teacher_of"].notna()]
    if teacher.empty:
        return pd.DataFrame(columns=columns)
    per_response = teacher.groupby(["record_id", "teacher_of"]).size().unstack(fill_value=0)
    within = per_response.div(per_response.sum(axis=1), axis=0)
    counts = per_response.sum(axis=0)
    return pd.DataFrame({
        "teacher_of": counts.index.astype(str), "actions": counts.to_numpy(np.int64),
        "share": (counts / counts.sum()).to_numpy(), "responses": (per_response > 0).sum(axis=0).to_numpy(np.int64),
        "mean_response_share": within.mean(axis=0).to_numpy(),
    }, columns=columns)
