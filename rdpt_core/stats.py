"""Corpus statistics over a classified action table (SPEC §1.9, §1.10), vectorised with pandas.

All functions take the action table with a class column (``cls`` or ``cls3``); ``Unscored``
actions are left out of every denominator.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .provenance import UNSCORED, classify_table

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


def position_curves(table: pd.DataFrame, column: str = "cls", min_n: int = 10) -> pd.DataFrame:
    """Per action index j, answer group (correct / incorrect / unknown) and class c: the share of
    responses whose j-th action is of class c among those with a scored j-th action, with
    ``k``, ``n`` and the 95% Wilson band; positions with ``n < min_n`` are dropped."""
    scored = _scored(table, column).assign(answer=lambda d: _answer_group(d["correct"]))
    n = scored.groupby(["answer", "action_index"]).size().rename("n")
    k = scored.groupby(["answer", "action_index", column]).size().rename("k")
    classes = sorted(scored[column].unique())
    full = pd.MultiIndex.from_product([n.index.levels[0], n.index.levels[1], classes],
                                      names=["answer", "action_index", column]) if len(n) else None
    if full is None:
        return pd.DataFrame(columns=["answer", "action_index", column, "k", "n", "share", "lo", "hi"])
    out = k.reindex(full, fill_value=0).reset_index().merge(n.reset_index(), on=["answer", "action_index"])
    out = out[out["n"] >= min_n].copy()
    out["share"] = out["k"] / out["n"]
    out["lo"], out["hi"] = wilson(out["k"], out["n"])
    return out.rename(columns={column: "cls"}).reset_index(drop=True)


def mean_probability_curves(table: pd.DataFrame, min_n: int = 10) -> pd.DataFrame:
    """Mean p_T / p_S / p_D per action index (long format: action_index, role, p, n)."""
    roles = [c for c in ("p_teacher", "p_student", "p_distilled") if c in table.columns]
    grouped = table.groupby("action_index")[roles]
    means, counts = grouped.mean(), grouped.count()
    long = means.stack().rename("p").reset_index().rename(columns={"level_1": "role"})
    long["n"] = counts.stack().to_numpy()
    long["role"] = long["role"].str.removeprefix("p_")
    return long[long["n"] >= min_n].reset_index(drop=True)


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
    """Per response, the share of its scored actions in each class (rows: record_id)."""
    scored = _scored(table, column)
    return pd.crosstab(scored["record_id"], scored[column], normalize="index")


def histogram(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Normalised histogram of proportions on ``bins`` equal bins of [0, 1] (1.0 in the last)."""
    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=bins, range=(0.0, 1.0))
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
    top = overlaps[overlaps["top_pair"]].sort_values(["overlap", "beta"])
    return None if top.empty else float(top["beta"].iloc[0])


def beta_grid(start: float = 0.05, stop: float = 0.20, step: float = 0.05) -> list[float]:
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 10) for i in range(n)]


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Two-sided z-test that two proportions are equal: (z, p-value); NaN when undefined."""
    if min(n1, n2) == 0:
        return float("nan"), float("nan")
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return float("nan"), float("nan")
    z = (k1 / n1 - k2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def correct_vs_incorrect(table: pd.DataFrame, column: str = "cls") -> pd.DataFrame:
    """Class shares of actions in correct vs incorrect responses, counts, z and p-value."""
    scored = _scored(table, column)
    groups = {g: scored[scored["correct"] == flag] for g, flag in (("correct", True), ("incorrect", False))}
    n = {g: len(d) for g, d in groups.items()}
    rows = []
    for cls in sorted(scored[column].unique()):
        k = {g: int((d[column] == cls).sum()) for g, d in groups.items()}
        z, p = two_proportion_test(k["correct"], n["correct"], k["incorrect"], n["incorrect"])
        rows.append({"cls": cls, "k_correct": k["correct"], "n_correct": n["correct"],
                     "share_correct": k["correct"] / n["correct"] if n["correct"] else float("nan"),
                     "k_incorrect": k["incorrect"], "n_incorrect": n["incorrect"],
                     "share_incorrect": k["incorrect"] / n["incorrect"] if n["incorrect"] else float("nan"),
                     "z": z, "p_value": p})
    return pd.DataFrame(rows)


def proportions_by_beta(table: pd.DataFrame, alpha: float, betas: Sequence[float], column: str = "cls") -> pd.DataFrame:
    """Long table ``beta, record_id, cls, proportion`` of per-response class shares, per β."""
    frames = []
    for beta in betas:
        props = response_proportions(classify_table(table, alpha, float(beta)), column)
        long = props.reset_index().melt(id_vars="record_id", var_name="cls", value_name="proportion")
        frames.append(long.assign(beta=float(beta)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["record_id", "cls", "proportion", "beta"])
