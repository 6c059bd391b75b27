"""Pure helpers behind the Response explorer: margins to the class thresholds, record
navigation, and the tokens behind one action.

All probabilities are action probabilities in [0, 1] (``p_teacher`` etc., the geometric mean
of the action's token probabilities); all differences and margins are in the same units
(probability points, not percent). Log-probabilities are natural logs (nats).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from .provenance import CLASSES_3, CLASSES_4, EPS, UNSCORED
from .records import Record
from .scoring import ScoredCorpus, assign_tokens, role_order
from .segment import segment

TOKENIZER_WARNING = (
    "These models tokenize the response differently, so their per-token means (and hence p, the "
    "geometric mean of the token probabilities of an action) average over different units and "
    "are not directly comparable: a model that cuts the same text into more, easier tokens gets "
    "a higher p for it. The log-probability per character (sum_logp / n_chars) does not depend "
    "on the tokenizer and is the comparable measure."
)

Correctness = bool | None | Literal["any"]


# ---- margins to the thresholds ----------------------------------------------------------------
def _check_threshold(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within [0, 1] (it compares probabilities), got {value}")


def with_margins(table: pd.DataFrame, alpha: float, beta: float) -> pd.DataFrame:
    """Copy of an action table with the distances of every action to the class thresholds.

    Needs ``p_teacher`` and ``p_student``; ``p_distilled`` when present switches on the
    4-class columns. The class columns (``cls``, ``cls3``) are not read: the classes are those
    of :mod:`rdpt_core.provenance` at this ``alpha`` and ``beta`` (pass the thresholds the
    table was classified with). All added columns are float64, in probability units:

    * ``d_TS`` = p_T − p_S; with D also ``d_DS`` = p_D − p_S and ``d_TD`` = p_T − p_D.
    * ``margin_alpha`` (with D only) = max(|d_DS|, |d_TD|, |d_TS|) − α: ≤ 0 inside the
      Shared box, > 0 outside it.
    * ``margin_beta`` = |d_TS| − β: > 0 beyond β (Teacher or Student by the β test),
      ≤ 0 inside (Boosted / Common).
    * ``to_flip``: the smallest change of *one* threshold (α or β, the other fixed, both kept
      within [0, 1]) that changes the action's class — under the 4-class cascade when the
      table has ``p_distilled``, else the 3-class rule:

      - 4 classes, Shared: only lowering α below max|Δ| flips it → |margin_alpha|
        (β is never consulted for a Shared action);
      - 4 classes, Teacher / Student / Boosted: raising α to max|Δ| makes it Shared, moving
        β across |d_TS| swaps Teacher/Student ↔ Boosted → min(|margin_alpha|, |margin_beta|);
      - 3 classes: moving β across |d_TS| → |margin_beta|.

      A difference within ``provenance.EPS`` (1e-12) of its threshold counts as *on* it (the
      classifier's "≤" holds there): such a margin gives ``to_flip`` = 0.0 exactly, and
      otherwise the tolerance shifts the switch point by 1e-12, which is ignored. A move that
      would need a threshold below 0 is impossible: an inside action with |Δ| ≤ EPS (e.g.
      p_T = p_S = p_D for Shared, p_T = p_S for Common) gets ``inf`` from that route.
      ``NaN`` when the action is unscored under the rule used (a needed probability is NaN).
      Sorting by ``to_flip`` ascending lists the actions closest to flipping first.
    """
    _check_threshold("alpha", alpha)
    _check_threshold("beta", beta)
    missing = {"p_teacher", "p_student"} - set(table.columns)
    if missing:
        raise ValueError(f"action table lacks {sorted(missing)}: score it with a teacher and a student")
    out = table.copy()
    p_t = out["p_teacher"].to_numpy(np.float64)
    p_s = out["p_student"].to_numpy(np.float64)
    d_ts = p_t - p_s
    out["d_TS"] = d_ts
    abs_ts = np.abs(d_ts)
    margin_beta = abs_ts - beta
    beta_route = _route(margin_beta, abs_ts)
    if "p_distilled" in out.columns:
        p_d = out["p_distilled"].to_numpy(np.float64)
        out["d_DS"] = p_d - p_s
        out["d_TD"] = p_t - p_d
        max_abs = np.max(np.abs(np.stack([p_d - p_s, p_t - p_d, d_ts])), axis=0)  # NaN propagates
        margin_alpha = max_abs - alpha
        out["margin_alpha"] = margin_alpha
        alpha_route = _route(margin_alpha, max_abs)
        shared = margin_alpha <= EPS  # NaN compares False; masked below
        with np.errstate(invalid="ignore"):
            to_flip = np.where(shared, alpha_route, np.fmin(alpha_route, beta_route))
        to_flip[np.isnan(max_abs)] = np.nan
    else:
        to_flip = beta_route
    out["margin_beta"] = margin_beta
    out["to_flip"] = to_flip
    return out


def _route(margin: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Threshold change needed to cross one boundary: |margin|, 0 within EPS of it, ``inf``
    for an inside action whose |Δ| ≤ EPS (it would need a threshold below 0); NaN stays NaN."""
    with np.errstate(invalid="ignore"):
        route = np.where(np.abs(margin) <= EPS, 0.0, np.abs(margin))
        route = np.where((margin <= EPS) & (distance <= EPS), np.inf, route)
    return np.where(np.isnan(margin), np.nan, route)


# ---- records: summary, filter, navigation -----------------------------------------------------
def _classes(column: str) -> tuple[str, ...]:
    if column == "cls":
        return CLASSES_4
    if column == "cls3":
        return CLASSES_3
    raise ValueError(f"class column must be 'cls' or 'cls3', got {column!r}")


def record_summary(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per ``record_id`` of a classified action table, in order of first appearance.

    Columns: ``record_id, question_id, correct, source, n_actions, n_scored`` (actions whose
    class is not Unscored), then ``share_<class>`` for every class of ``column``
    (``provenance.CLASSES_4`` for ``cls``, ``CLASSES_3`` for ``cls3``): the fraction in [0, 1]
    of the *scored* actions in that class (NaN when none is scored). When the table has a
    ``to_flip`` column (:func:`with_margins`), also ``min_to_flip``: its minimum over the
    record's actions (NaN when none is finite-or-inf, i.e. all unscored).
    """
    classes = _classes(column)
    ids = pd.Index(table["record_id"].drop_duplicates())
    first = table.drop_duplicates("record_id").set_index("record_id")
    labels = table[column].fillna(UNSCORED)
    counts = pd.crosstab(table["record_id"], labels).reindex(index=ids, columns=[*classes, UNSCORED],
                                                             fill_value=0)
    n_actions = counts.sum(axis=1)
    n_scored = n_actions - counts[UNSCORED]
    out = pd.DataFrame({
        "record_id": ids,
        "question_id": first["question_id"].reindex(ids).to_numpy() if "question_id" in first else None,
        "correct": first["correct"].reindex(ids).to_numpy() if "correct" in first else None,
        "source": first["source"].reindex(ids).to_numpy() if "source" in first else None,
        "n_actions": n_actions.to_numpy(np.int64),
        "n_scored": n_scored.to_numpy(np.int64),
    })
    denom = n_scored.to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in classes:
            out[f"share_{c}"] = np.where(denom > 0, counts[c].to_numpy(np.float64) / denom, np.nan)
    if "to_flip" in table.columns:
        out["min_to_flip"] = table.groupby("record_id", sort=False)["to_flip"].min().reindex(ids).to_numpy()
    out["correct"] = out["correct"].astype("boolean")
    return out


def filter_records(
    summary: pd.DataFrame,
    records: Sequence[Record],
    *,
    correct: Correctness = "any",
    sources: Sequence[str | None] | None = None,
    has_class: str | None = None,
    search: str = "",
    sort_by: str | None = None,
    descending: bool = True,
) -> list[str]:
    """Record ids that match every filter, sorted by a summary column.

    The candidates are ``records`` in their order, then the summary's records without a
    :class:`Record` (they have no text, so a non-empty ``search`` drops them). Records absent
    from ``summary`` (not scored, or empty responses without actions) stay findable by
    ``correct``, ``sources`` and ``search``; a ``has_class`` filter drops them (they have no
    action of any class), and ``sort_by`` puts them last, like every missing (NaN) value,
    whichever the direction.

    * ``correct``: ``True`` / ``False``; ``None`` = unknown only; ``"any"`` = no filter.
    * ``sources``: keep records whose ``source`` is in the list (``None`` in it matches a
      record without source); ``None`` = no filter.
    * ``has_class``: keep records with at least one action of that class (a class of the
      summary's column, or ``"Unscored"``).
    * ``search``: case-insensitive substring of the response or the prompt ("" = no filter).
    * ``sort_by``: a summary column; the sort is stable, so ties (and ``sort_by=None``) keep
      the candidates' order.
    """
    frame = _candidates(summary, records)
    keep = np.ones(len(frame), dtype=bool)
    if correct is not None and not isinstance(correct, bool) and correct != "any":
        raise ValueError(f"correct must be True, False, None or 'any', got {correct!r}")
    if correct is None:
        keep &= frame["correct"].isna().to_numpy()
    elif isinstance(correct, bool):
        keep &= frame["correct"].eq(correct).fillna(False).to_numpy(bool)
    if sources is not None:
        wanted = set(sources)
        keep &= np.array([s in wanted for s in frame["source"]], dtype=bool)
    if has_class is not None:
        keep &= _has_class(frame, has_class)
    if search:
        needle = search.casefold()
        hay = frame["response"].fillna("") + "\x00" + frame["prompt"].fillna("")
        keep &= hay.str.casefold().str.contains(needle, regex=False).to_numpy(bool)
    hits = frame[keep]
    if sort_by is not None:
        if sort_by not in summary.columns:
            raise ValueError(f"cannot sort by {sort_by!r}: not a summary column")
        hits = hits.sort_values(sort_by, ascending=not descending, kind="stable", na_position="last")
    return hits["record_id"].tolist()


def _candidates(summary: pd.DataFrame, records: Sequence[Record]) -> pd.DataFrame:
    """One row per candidate record: its fields, with the summary's columns joined on."""
    from_records = pd.DataFrame({
        "record_id": pd.Series([r.record_id for r in records], dtype=object),
        "question_id": pd.Series([r.question_id for r in records], dtype=object),
        "prompt": pd.Series([r.prompt for r in records], dtype=object),
        "response": pd.Series([r.response for r in records], dtype=object),
        "correct": pd.array([r.correct for r in records], dtype="boolean"),
        "source": pd.Series([r.source for r in records], dtype=object),
    })
    known = set(from_records["record_id"])
    fields = ["record_id", "question_id", "correct", "source"]
    extra = summary.loc[~summary["record_id"].isin(known), fields]
    if len(extra):
        extra = extra.astype({"record_id": object, "question_id": object, "source": object})
        frame = pd.concat([from_records, extra], ignore_index=True)
    else:
        frame = from_records
    frame["correct"] = frame["correct"].astype("boolean")
    frame["source"] = frame["source"].astype(object).where(frame["source"].notna(), None)
    stats = summary.drop(columns=[c for c in ("question_id", "correct", "source") if c in summary.columns])
    stats = stats.astype({"record_id": object})
    return frame.merge(stats, on="record_id", how="left", sort=False)


def _has_class(frame: pd.DataFrame, cls: str) -> np.ndarray:
    if cls == UNSCORED:
        return (frame["n_actions"] > frame["n_scored"]).fillna(False).to_numpy(bool)
    column = f"share_{cls}"
    if column not in frame.columns:
        raise ValueError(f"no class {cls!r} in this summary")
    return (frame[column] > 0).fillna(False).to_numpy(bool)


def neighbours(ids: Sequence[str], current: str) -> tuple[str | None, str | None]:
    """(previous, next) record id around ``current`` in ``ids``; ``None`` past either end.

    When ``current`` is not in ``ids`` (filtered out), there is no previous and the next is
    the first id, so "next" enters the filtered list.
    """
    ids = list(ids)
    if current not in ids:
        return None, (ids[0] if ids else None)
    i = ids.index(current)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)


# ---- tokens of one action ---------------------------------------------------------------------
TOKEN_COLUMNS = ["role", "token_index", "start", "end", "text", "logprob", "p", "scored", "truncated", "straddle"]


def _record(corpus: ScoredCorpus, record_id: str) -> Record:
    for r in corpus.records:
        if r.record_id == record_id:
            return r
    raise KeyError(f"no record {record_id!r} in this corpus")


def action_tokens(
    corpus: ScoredCorpus, record_id: str, action_index: int, segmenter: str = "paper"
) -> pd.DataFrame:
    """The tokens the scoring rule assigns to one action, one row per (role, token).

    Roles in job order (``scoring.role_order``; those that scored the record), tokens in sequence order.
    Columns: ``role``, ``token_index`` (position among the record's response tokens for that
    role), ``start``/``end`` (character offsets into the *response*, clipped to it), ``text``
    (``response[start:end]``), ``logprob`` (nats; NaN when unscored), ``p`` = exp(logprob),
    ``scored`` (finite logprob), ``truncated``, ``straddle``. The assignment is
    ``scoring.assign_tokens`` on the same segmentation as ``corpus.actions(segmenter)``, so per
    role the sum of the scored logprobs is ``sum_logp_<role>`` and their count
    ``n_tokens_<role>`` of that action's row.
    """
    record = _record(corpus, record_id)
    actions = segment(record.response, corpus.markers, segmenter)
    if not 0 <= action_index < len(actions):
        raise IndexError(f"record {record_id!r} has {len(actions)} actions, no action {action_index}")
    bounds = np.array([a.start for a in actions] + [actions[-1].end], dtype=np.int64)  # as action_scores
    frames = []
    for role in (r for r in role_order(corpus.tokens) if record_id in corpus.tokens[r]):
        scores = corpus.tokens[role][record_id]
        owner = assign_tokens(scores.offsets, bounds, scores.straddle)
        idx = np.flatnonzero(owner == action_index)
        spans = np.clip(scores.offsets[idx], 0, len(record.response))
        logp = scores.logprobs[idx]
        frames.append(pd.DataFrame({
            "role": role,
            "token_index": idx.astype(np.int64),
            "start": spans[:, 0],
            "end": spans[:, 1],
            "text": [record.response[s:e] for s, e in spans],
            "logprob": logp,
            "p": np.exp(logp),
            "scored": np.isfinite(logp),
            "truncated": scores.truncated[idx],
            "straddle": scores.straddle[idx],
        }))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TOKEN_COLUMNS})
    return pd.concat(frames, ignore_index=True)


def tokenizers_differ(corpus: ScoredCorpus, record_id: str) -> dict[tuple[str, str], bool]:
    """For every pair of roles that scored the record (in job order), whether they cut the
    response into different tokens (their character offsets differ). When any pair differs,
    the app can show :data:`TOKENIZER_WARNING`."""
    roles = [r for r in role_order(corpus.tokens) if record_id in corpus.tokens[r]]
    offsets = {r: corpus.tokens[r][record_id].offsets for r in roles}
    return {
        (a, b): not np.array_equal(offsets[a], offsets[b])
        for i, a in enumerate(roles) for b in roles[i + 1:]
    }
