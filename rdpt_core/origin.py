"""Agreement of the provenance classes with a known origin (docs/method.md §17).

Some teachers write in a style of their own: their sentences open with markers ("Plan:",
"Step 2 of 5:", …). A distilled model's action that opens with such a marker is known to come
from the teacher by a rule that involves no model, so it can check the classes: are the
teacher-style actions classified Teacher, and are Teacher-classified actions teacher-style?

The unit is the action (sentence); ``Unscored`` actions are left out of every count, as in
:mod:`rdpt_core.stats`. :func:`origin_by_response` gives one number per response, for
statistics that must not treat the actions of one response as independent trials.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .provenance import BOOSTED, SEVERAL, TEACHER, UNSCORED, class_column, classify_table
from .stats import teacher_origin

CONFUSION_COLUMNS = ["teacher_style", "other", "share_of_teacher_style", "share_of_other"]
AGREEMENT_COLUMNS = ["beta", "n_teacher_style", "n_other", "teacher_recall", "teacher_or_boosted_recall",
                     "teacher_precision", "other_as_teacher"]
BY_RESPONSE_COLUMNS = ["record_id", "n_teacher_style", "n_teacher_style_as_teacher", "teacher_recall"]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The teacher-style regex, compiled; a bad one raises ValueError naming it and the error."""
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"invalid teacher-style pattern {pattern!r}: {err}") from err


def known_origin(texts: pd.Series, pattern: str) -> np.ndarray:
    """Per action (by position, whatever the index): does its text, leading whitespace stripped,
    start with a match of ``pattern`` (``re.match``, case-sensitive unless the pattern says
    ``(?i)``)? Leading whitespace is stripped because segmentation puts the space or blank line
    before a sentence at the start of its action (docs/method.md §2)."""
    regex = compile_pattern(pattern)
    # Python's re for every text: pandas' .str.match may run pyarrow's RE2, another dialect
    return np.fromiter((isinstance(t, str) and regex.match(t.lstrip()) is not None for t in texts),
                       dtype=bool, count=len(texts))


def _ratio(k: int, n: int) -> float:
    return k / n if n else float("nan")


def _per_action(table: pd.DataFrame, values: np.ndarray, dtype: type, what: str) -> np.ndarray:
    """``values`` as an array of ``dtype``, one per action of ``table`` (else a ValueError)."""
    out: np.ndarray = np.asarray(values, dtype=dtype)
    if len(out) != len(table):
        raise ValueError(f"{len(out)} {what} for {len(table)} actions")
    return out


def _flags(table: pd.DataFrame, styled: np.ndarray) -> np.ndarray:
    return _per_action(table, styled, bool, "teacher-style flags")


def _is(table: pd.DataFrame, column: str, cls: str) -> np.ndarray:
    # compared in the table's string dtype: converting 400k labels to objects costs more
    return (table[column] == cls).to_numpy(dtype=bool)


def origin_confusion(table: pd.DataFrame, column: str, styled: np.ndarray) -> pd.DataFrame:
    """Classes against known origin. Unit: actions (sentences), Unscored ones left out.

    Rows: the classes of the scored actions, sorted; columns: ``teacher_style`` and ``other``
    (counts of actions), ``share_of_teacher_style`` and ``share_of_other`` (the class's share of
    all teacher-style / other scored actions; NaN when there are none)."""
    flags, scored = _flags(table, styled), ~_is(table, column, UNSCORED)
    classes = pd.Series(table[column].to_numpy()[scored], name="class", dtype=str)
    counts = pd.crosstab(classes, flags[scored]).reindex(columns=[True, False], fill_value=0)
    out = pd.DataFrame({"teacher_style": counts[True], "other": counts[False]}).sort_index()
    for count, share in (("teacher_style", "share_of_teacher_style"), ("other", "share_of_other")):
        total = int(out[count].sum())
        out[share] = out[count] / total if total else float("nan")
    out.index.name = "class"
    return out.astype({"teacher_style": "int64", "other": "int64"})[CONFUSION_COLUMNS]


def _agreement_row(table: pd.DataFrame, column: str, styled: np.ndarray) -> dict[str, float]:
    scored = ~_is(table, column, UNSCORED)
    teacher = _is(table, column, TEACHER)
    # Boosted: a teacher action the student could already write; the 3-class rule has none
    teacher_or_boosted = teacher | _is(table, column, BOOSTED)
    style, other = styled & scored, ~styled & scored
    n_style, n_other = int(style.sum()), int(other.sum())
    return {
        "n_teacher_style": n_style, "n_other": n_other,
        "teacher_recall": _ratio(int((style & teacher).sum()), n_style),
        "teacher_or_boosted_recall": _ratio(int((style & teacher_or_boosted).sum()), n_style),
        "teacher_precision": _ratio(int((style & teacher).sum()), int(teacher.sum())),
        "other_as_teacher": _ratio(int((other & teacher).sum()), n_other),
    }


def origin_agreement(table: pd.DataFrame, pattern: str, alpha: float, betas: Sequence[float]) -> pd.DataFrame:
    """Per β (at ``alpha``), how the classes agree with the known origin. Unit: actions.

    An action is teacher-style when :func:`known_origin` says so; classes are the 4 classes when
    the table has ``p_distilled``, else the 3 pre-training ones. Columns: ``beta``,
    ``n_teacher_style`` / ``n_other`` (scored actions), ``teacher_recall`` (share of teacher-style
    actions classified Teacher), ``teacher_or_boosted_recall`` (Teacher or Boosted),
    ``teacher_precision`` (share of Teacher actions that are teacher-style), ``other_as_teacher``
    (share of other actions classified Teacher). NaN where a denominator is 0."""
    styled = known_origin(table["text"], pattern)
    rows = []
    for beta in betas:
        classified = classify_table(table, alpha, float(beta))
        rows.append({"beta": float(beta), **_agreement_row(classified, class_column(classified), styled)})
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def origin_by_response(table: pd.DataFrame, column: str, styled: np.ndarray) -> pd.DataFrame:
    """Per response with a scored action (rows sorted by ``record_id``): ``n_teacher_style``
    (its scored teacher-style actions), ``n_teacher_style_as_teacher`` (of them, classified
    Teacher) and ``teacher_recall`` (their ratio; NaN without teacher-style actions). One row
    per response, so a test over responses respects that one response's actions are related."""
    flags, scored = _flags(table, styled), ~_is(table, column, UNSCORED)
    parts = pd.DataFrame({"record_id": table["record_id"].array[scored], "style": flags[scored],
                          "hit": (flags & _is(table, column, TEACHER))[scored]})
    # observed=True: a categorical id (the app's) without scored actions gets no row
    out = parts.groupby("record_id", observed=True, sort=True)[["style", "hit"]].sum().reset_index()
    out = out.rename(columns={"style": "n_teacher_style", "hit": "n_teacher_style_as_teacher"})
    out["teacher_recall"] = out["n_teacher_style_as_teacher"] / out["n_teacher_style"].replace(0, np.nan)
    return out.astype({"n_teacher_style": "int64", "n_teacher_style_as_teacher": "int64"})[BY_RESPONSE_COLUMNS]


# ---- several teachers (docs/method.md §18) ------------------------------------------------------
NEITHER = "neither"
ATTRIBUTION_BY_GAMMA_COLUMNS = ["gamma", "teacher", "n_marked", "attributed_to_it", "attributed_to_several",
                                "attributed_to_another", "not_teacher_class", "precision"]


GAMMA_GRID = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)  # attribution by γ: the lab's and the app's grid


def parse_teacher_patterns(text: str) -> dict[str, str]:
    """``name = regex`` per line (blank lines and ``#`` comments skipped) → teacher name →
    pattern, for :func:`known_teachers`. A line without ``=``, an empty name or pattern, a
    repeated name or a bad regex raises ValueError naming the line."""
    patterns: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, pattern = line.partition("=")
        name, pattern = name.strip(), pattern.strip()
        if not sep or not name or not pattern:
            raise ValueError(f"line {number}: write 'teacher name = regex', got {line.strip()!r}")
        if name in patterns:
            raise ValueError(f"line {number}: teacher {name!r} is given twice")
        try:
            compile_pattern(pattern)
        except ValueError as err:
            raise ValueError(f"line {number}: {err}") from err
        patterns[name] = pattern
    return patterns


def known_teachers(texts: pd.Series, patterns: dict[str, str]) -> np.ndarray:
    """Per action, the teacher whose style marker opens it (``patterns``: teacher name → regex,
    as :func:`known_origin`), or :data:`NEITHER`. An action matching two teachers' patterns is
    an error: the styles must be told apart for the truth to mean anything."""
    if not patterns:
        raise ValueError("no teacher-style patterns given")
    hits = np.stack([known_origin(texts, pattern) for pattern in patterns.values()])
    both = np.flatnonzero(hits.sum(axis=0) > 1)
    if len(both):
        raise ValueError(f"action {int(both[0])} ({str(texts.iloc[both[0]])[:60]!r}) matches the style of more than "
                         "one teacher: make the patterns disjoint")
    labels = np.array([*patterns, NEITHER], dtype=object)
    return labels[np.where(hits.any(axis=0), hits.argmax(axis=0), len(patterns))]


def attribution_confusion(classified: pd.DataFrame, known: np.ndarray) -> pd.DataFrame:
    """Counts of each attribution (``teacher_of``: a teacher, "Several teachers"; else the
    action's class) against the known origin (a teacher or :data:`NEITHER`), Unscored left
    out; one row per attribution, one column per known origin, plus each column's shares
    (``share_of_<origin>``)."""
    known = _per_action(classified, known, object, "known origins")
    label = teacher_origin(classified).to_numpy(dtype=object)
    keep = label != UNSCORED
    counts = pd.crosstab(pd.Series(label[keep], name="attribution"), pd.Series(known[keep], name="known"))
    shares = counts.div(counts.sum(axis=0), axis=1).add_prefix("share_of_")
    return pd.concat([counts, shares], axis=1)


def attribution_by_gamma(table: pd.DataFrame, patterns: dict[str, str], alpha: float, beta: float,
                         gammas: Sequence[float]) -> pd.DataFrame:
    """Per γ and per teacher: of the scored actions marked with its style (``n_marked``), the
    shares attributed to it, to several teachers, to another teacher, or not of class Teacher /
    Boosted at all; and ``precision``, the share of the actions attributed to it that carry its
    marker (NaN when none is attributed). Unit: actions."""
    known = known_teachers(table["text"], patterns)
    rows = []
    for gamma in gammas:
        classified = classify_table(table, alpha, beta, gamma)
        scored = (classified[class_column(classified)] != UNSCORED).to_numpy()
        attributed = np.array([a if isinstance(a, str) else "" for a in classified["teacher_of"]], dtype=object)
        for name in patterns:
            marked = scored & (known == name)
            to, n = attributed[marked], int(marked.sum())
            claimed = attributed == name
            rows.append({"gamma": gamma, "teacher": name, "n_marked": n,
                         "attributed_to_it": _ratio(int((to == name).sum()), n),
                         "attributed_to_several": _ratio(int((to == SEVERAL).sum()), n),
                         "attributed_to_another": _ratio(int(((to != name) & (to != SEVERAL) & (to != "")).sum()), n),
                         "not_teacher_class": _ratio(int((to == "").sum()), n),
                         "precision": _ratio(int((claimed & (known == name)).sum()), int(claimed.sum()))})
    return pd.DataFrame(rows, columns=ATTRIBUTION_BY_GAMMA_COLUMNS)
