"""Distillation-source comparison (docs/method.md §12; "Not all correct answers are equal").

Input: records tagged by ``source`` over shared questions, and each response's token scores
under one chosen *reference* model (the same tokenizer for every source, so lengths compare).

* Length distribution per source: responses, mean, sample std (ddof 1), coefficient of
  variation, min, quantiles (10/25/50/75/90 %), max; and a histogram on shared bins.
* Perplexity per source: ``exp(−mean token logp)`` over *all* the source's response tokens
  (token-weighted, so long responses weigh by their length); the per-response median is shown
  beside it. Tokens without a log-prob (the very first token of an empty context) are skipped.
* Difficulty of a question: the share of sources answering it correctly, where a source with
  several responses to it counts with its share of correct ones. Only *shared* questions (a
  response from every source, each source with at least one known correctness) get one.
* Adaptive length: per source, the mean length on each shared question against that question's
  difficulty; Spearman's ρ (scipy, with its p-value; none below 5 questions) summarises it
  (negative: longer on harder questions). The unit is the shared question.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .backends.base import ScoringBackend, TokenScores
from .cache import TokenCache
from .records import Record
from .scoring import ProgressFactory, no_progress, score_role

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
UNKNOWN_SOURCE = "(unknown)"


def score_reference(records: Sequence[Record], backend: ScoringBackend, *, cache: TokenCache | None = None,
                    progress: ProgressFactory = no_progress) -> dict[str, TokenScores]:
    """Token scores of every record under the reference model (cached per token, like scoring)."""
    tokens, _ = score_role(backend, records, cache if cache is not None else TokenCache(), "reference", progress)
    return tokens


def response_table(records: Sequence[Record], tokens: Mapping[str, TokenScores]) -> pd.DataFrame:
    """One row per record with reference token scores: record_id, question_id, source, correct,
    n_tokens, n_chars, sum_logp and n_logp (tokens that have a log-prob)."""
    rows = []
    for r in records:
        scores = tokens.get(r.record_id)
        if scores is None:
            continue
        finite = np.isfinite(scores.logprobs)
        rows.append({
            "record_id": r.record_id, "question_id": r.question_id,
            "source": r.source if r.source else UNKNOWN_SOURCE, "correct": r.correct,
            "n_tokens": int(scores.n_tokens), "n_chars": len(r.response),
            "sum_logp": float(scores.logprobs[finite].sum()), "n_logp": int(finite.sum()),
        })
    table = pd.DataFrame(rows, columns=["record_id", "question_id", "source", "correct", "n_tokens",
                                        "n_chars", "sum_logp", "n_logp"])
    table["correct"] = table["correct"].astype("boolean")
    return table


def _perplexity(sum_logp: pd.Series, n_logp: pd.Series) -> pd.Series:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.exp(-sum_logp / n_logp.where(n_logp > 0))


def length_stats(responses: pd.DataFrame, column: str = "n_tokens") -> pd.DataFrame:
    """Per source (order of first appearance): the length distribution and perplexity."""
    grouped = responses.groupby("source", sort=False)
    lengths = grouped[column]
    out = pd.DataFrame({
        "responses": lengths.size(),
        "mean": lengths.mean(),
        "std": lengths.std(ddof=1),
        "min": lengths.min(),
        **{f"q{round(q * 100):02d}": lengths.quantile(q) for q in QUANTILES},
        "max": lengths.max(),
    })
    out["cv"] = out["std"] / out["mean"]
    out["perplexity"] = _perplexity(grouped["sum_logp"].sum(), grouped["n_logp"].sum())
    per_response = _perplexity(responses["sum_logp"], responses["n_logp"])
    out["median_response_perplexity"] = per_response.groupby(responses["source"], sort=False).median()
    out["accuracy"] = grouped["correct"].mean().astype(float)
    return out.reset_index()


def histogram(responses: pd.DataFrame, bins: int = 20, column: str = "n_tokens") -> pd.DataFrame:
    """Counts per source on one set of equal-width bins over all sources' lengths."""
    edges = np.histogram_bin_edges(responses[column].to_numpy(float), bins=bins)
    rows = []
    for source, part in responses.groupby("source", sort=False):
        counts, _ = np.histogram(part[column].to_numpy(float), bins=edges)
        rows += [{"source": source, "bin_start": float(a), "bin_end": float(b), "count": int(c)}
                 for a, b, c in zip(edges[:-1], edges[1:], counts)]
    return pd.DataFrame(rows, columns=["source", "bin_start", "bin_end", "count"])


def difficulty(responses: pd.DataFrame) -> pd.DataFrame:
    """Per shared question: ``solve_rate`` = mean over sources of the source's share of correct
    responses to it, and ``n_sources``."""
    sources = responses["source"].unique()
    labelled = responses[responses["correct"].notna()]
    share = labelled.groupby(["question_id", "source"], sort=False)["correct"].mean().astype(float)
    per_question = share.groupby(level="question_id", sort=False)
    out = pd.DataFrame({"solve_rate": per_question.mean(), "n_sources": per_question.size()})
    return out[out["n_sources"] == len(sources)].reset_index()


def length_vs_difficulty(responses: pd.DataFrame, column: str = "n_tokens") -> pd.DataFrame:
    """Per (source, shared question): mean length and the question's solve rate."""
    diff = difficulty(responses)
    means = (responses.groupby(["source", "question_id"], sort=False)[column].mean()
             .rename("mean_length").reset_index())
    return means.merge(diff[["question_id", "solve_rate"]], on="question_id", how="inner")


MIN_QUESTIONS = 5  # fewer shared questions: no correlation
ADAPTIVITY_CAPTION = (
    "Unit: shared questions (one point per source and question: its mean length there). Solve rate = share "
    "of sources answering correctly. ρ and p from scipy's Spearman rank correlation (two-sided); a negative ρ "
    f"means longer responses to harder questions; none with fewer than {MIN_QUESTIONS} questions.")


def adaptivity(responses: pd.DataFrame, column: str = "n_tokens", min_questions: int = MIN_QUESTIONS) -> pd.DataFrame:
    """Per source: Spearman's ρ of its mean length per shared question against the question's
    solve rate (negative = longer responses to harder questions), with the two-sided p-value of
    :func:`scipy.stats.spearmanr` (ties share their average rank) and ``questions``, the number of
    shared questions it rests on. ρ and p are NaN, with a ``note`` saying why, when there are
    fewer than ``min_questions`` questions or either side is constant."""
    from scipy.stats import spearmanr

    columns = ["source", "spearman_length_vs_solve_rate", "p_value", "questions", "note"]
    points = length_vs_difficulty(responses, column)
    rows = []
    for source, part in points.groupby("source", sort=False):
        rho = p = float("nan")
        note = ""
        lengths, rates = part["mean_length"].to_numpy(float), part["solve_rate"].to_numpy(float)
        if len(part) < min_questions:
            note = f"too few questions ({len(part)} < {min_questions})"
        elif np.ptp(lengths) == 0 or np.ptp(rates) == 0:
            note = "constant " + ("length" if np.ptp(lengths) == 0 else "solve rate") + ": no correlation"
        else:
            result = spearmanr(lengths, rates)
            rho, p = float(result.statistic), float(result.pvalue)
        rows.append({"source": source, "spearman_length_vs_solve_rate": rho, "p_value": p,
                     "questions": len(part), "note": note})
    return pd.DataFrame(rows, columns=columns)
