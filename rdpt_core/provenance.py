"""Provenance classes of actions (docs/method.md §7–§8), vectorised over the action table.

Test time, four classes, evaluated in this order (the paper's cascade)::

    Shared   if |Δ_SD| ≤ α and |Δ_TD| ≤ α and |Δ_TS| ≤ α
    Teacher  elif Δ_TS > β
    Student  elif −Δ_TS > β
    Boosted  otherwise

with Δ_SD = p_S − p_D, Δ_TD = p_T − p_D, Δ_TS = p_T − p_S. Before training (no D), three
classes: Common if |Δ_TS| ≤ β, Teacher if Δ_TS > β, Student if −Δ_TS > β.

Several teachers (docs/method.md §18): ``p_T`` is the best teacher's ``p``, and a Teacher or
Boosted action is attributed to that teacher when it beats every other by more than γ, else to
"Several teachers".

Comparisons carry a tolerance of ``EPS`` = 1e-12 so that a difference that equals a threshold
in decimal (0.3 − 0.2 vs 0.1) lands on the side the formula's "≤" or ">" says, not on the side
float rounding picks. An action with a missing probability is ``Unscored``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHARED, TEACHER, STUDENT, BOOSTED, COMMON, UNSCORED = (
    "Shared", "Teacher", "Student", "Boosted", "Common", "Unscored",
)
CLASSES_4 = (SHARED, TEACHER, STUDENT, BOOSTED)
CLASSES_3 = (COMMON, TEACHER, STUDENT)
EPS = 1e-12

# Okabe–Ito colours (distinguishable with the common colour-vision deficiencies); the paper's
# hues where it has them: Teacher green, Boosted yellow/orange, Student blue.
CLASS_COLORS: dict[str, str] = {
    TEACHER: "#009E73",
    BOOSTED: "#E69F00",
    STUDENT: "#56B4E9",
    SHARED: "#999999",
    COMMON: "#CC79A7",
    UNSCORED: "#FFFFFF",
}
# Several teachers (§18): one Okabe–Ito colour each (in the explorer's teacher view only the
# attributed actions are coloured, so the class hues can be reused), ordered so that each next
# teacher's tint stays farthest from those before it, from "Several teachers" (black: a grey
# tint) and from an uncoloured action, under simulated protan, deutan and tritan vision
# (tests/test_render.py measures it: ΔE ≥ 15 for two teachers, ≥ 9 for three).
TEACHER_COLORS = ("#0072B2", "#D55E00", "#E69F00", "#56B4E9", "#F0E442", "#CC79A7", "#009E73")
SEVERAL_COLOR = "#000000"
DEFAULT_ALPHA = 0.1
DEFAULT_BETA = 0.1
DEFAULT_GAMMA = 0.1
SEVERAL = "Several teachers"
NAMED_TEACHER = "teacher_"  # a named teacher's role: teacher_<name> (rdpt_core.scoring.teacher_role)
TEACHER_PREFIX = f"p_{NAMED_TEACHER}"  # its probability column, p_teacher_<name>


def _check_threshold(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within [0, 1] (it compares probabilities), got {value}")


# Classes are computed as codes into these names (the cascade's order, default last) and turned
# into labels by indexing one small array: converting a 400k-action array of strings to Python
# objects or to pandas' string dtype cost ~0.05 s a column on every slider step.
_NAMES4 = (UNSCORED, SHARED, TEACHER, STUDENT, BOOSTED)
_NAMES3 = (UNSCORED, TEACHER, STUDENT, COMMON)


def _codes4(p_t, p_s, p_d, alpha: float, beta: float) -> np.ndarray:
    _check_threshold("alpha", alpha)
    _check_threshold("beta", beta)
    p_t, p_s, p_d = (np.asarray(x, dtype=np.float64) for x in (p_t, p_s, p_d))
    d_sd, d_td, d_ts = p_s - p_d, p_t - p_d, p_t - p_s
    unscored = np.isnan(d_sd) | np.isnan(d_td)
    shared = (np.abs(d_sd) <= alpha + EPS) & (np.abs(d_td) <= alpha + EPS) & (np.abs(d_ts) <= alpha + EPS)
    return np.select([unscored, shared, d_ts > beta + EPS, -d_ts > beta + EPS], [0, 1, 2, 3], default=4)


def _codes3(p_t, p_s, beta: float) -> np.ndarray:
    _check_threshold("beta", beta)
    d_ts = np.asarray(p_t, dtype=np.float64) - np.asarray(p_s, dtype=np.float64)
    return np.select([np.isnan(d_ts), d_ts > beta + EPS, -d_ts > beta + EPS], [0, 1, 2], default=3)


def classify4(p_t, p_s, p_d, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA) -> np.ndarray:
    """4-class labels (object array of class names) for arrays of action probabilities."""
    return np.array(_NAMES4, dtype=object)[_codes4(p_t, p_s, p_d, alpha, beta)]


def classify3(p_t, p_s, beta: float = DEFAULT_BETA) -> np.ndarray:
    """3-class (before training) labels for arrays of teacher and student probabilities."""
    return np.array(_NAMES3, dtype=object)[_codes3(p_t, p_s, beta)]


def class_column(table: pd.DataFrame) -> str:
    """The class column to show for a classified table: ``cls`` (4 classes) when it has a
    distilled model's scores, else ``cls3`` (the 3 pre-training classes)."""
    return "cls" if "cls" in table.columns else "cls3"


def classify_table(
    actions: pd.DataFrame, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
    gamma: float = DEFAULT_GAMMA,
) -> pd.DataFrame:
    """Copy of ``actions`` with ``cls3`` (needs p_teacher, p_student) and, when the table has
    ``p_distilled``, ``cls`` (4 classes). With several named teachers, also ``teacher_of``:
    the teacher a Teacher or Boosted action is attributed to at margin ``gamma`` (§18)."""
    names = teacher_names(actions)
    if len(names) >= 2 and "teacher_margin" not in actions.columns:
        actions = add_best_teacher(actions)
    missing = {"p_teacher", "p_student"} - set(actions.columns)
    if missing:
        raise ValueError(f"action table lacks {sorted(missing)}: score it with a teacher and a student")
    classes = {}  # pandas string arrays taken from the names (the table's text dtype)
    if "p_distilled" in actions.columns:
        codes = _codes4(actions["p_teacher"], actions["p_student"], actions["p_distilled"], alpha, beta)
        classes["cls"] = pd.array(_NAMES4, dtype="str").take(codes)
    classes["cls3"] = pd.array(_NAMES3, dtype="str").take(_codes3(actions["p_teacher"], actions["p_student"], beta))
    if len(names) >= 2:
        shown = np.asarray(classes.get("cls", classes["cls3"]), dtype=object)
        index = pd.Series(pd.Categorical(actions["best_teacher"], categories=names).codes)
        classes["teacher_of"] = pd.array(attribute_teachers(shown, index.to_numpy(), actions["teacher_margin"].to_numpy(),
                                                            names, gamma), dtype="str")
    # assign, not copy(): pandas' copy-on-write shares the unchanged columns (a deep copy of a
    # 400k-action table was most of a slider step) and still never changes ``actions``
    return actions.assign(**classes)


def teacher_names(table: pd.DataFrame) -> list[str]:
    """Named teachers of a multi-teacher table, in column order (``p_teacher_<name>``); empty
    for a single-teacher table."""
    return [c[len(TEACHER_PREFIX):] for c in table.columns if c.startswith(TEACHER_PREFIX)]


def best_teacher(p_by_teacher: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``[teachers x actions]`` probabilities: the best teacher's ``p`` (NaN when no teacher
    scored the action), its index (the first of tied teachers; -1 when none scored) and its
    margin over the runner-up (NaN when any teacher could not score the action: who else
    would have claimed it is unknown)."""
    p = np.asarray(p_by_teacher, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 2:
        raise ValueError(f"best_teacher needs [teachers x actions] with at least 2 teachers, got shape {p.shape}")
    filled = np.where(np.isnan(p), -np.inf, p)
    index = np.argmax(filled, axis=0)
    ordered = np.sort(filled, axis=0)
    top = ordered[-1]  # the best teacher's p: the largest of its column
    none = np.isneginf(top)
    with np.errstate(invalid="ignore"):  # -inf - -inf where no teacher scored: NaN, set below anyway
        margin = ordered[-1] - ordered[-2]
    margin[np.isnan(p).any(axis=0)] = np.nan
    return np.where(none, np.nan, top), np.where(none, -1, index), margin


def attribute_teachers(cls: np.ndarray, best: np.ndarray, margin: np.ndarray, names: list[str],
                       gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """Which teacher a Teacher or Boosted action came from: ``names[best]`` when its margin
    over every other teacher exceeds γ, else :data:`SEVERAL` (ties and unknown margins
    included); ``None`` for actions of the other classes."""
    _check_threshold("gamma", gamma)
    cls, best, margin = np.asarray(cls, dtype=object), np.asarray(best), np.asarray(margin, dtype=np.float64)
    claimed = np.isin(cls, [TEACHER, BOOSTED])
    alone = claimed & (margin > gamma + EPS)  # NaN compares False: never alone
    labels = np.array([*names, SEVERAL, None], dtype=object)
    return labels[np.select([alone, claimed], [best, len(names)], default=len(names) + 1)]


def add_best_teacher(table: pd.DataFrame) -> pd.DataFrame:
    """For a table with several ``p_teacher_<name>`` columns: add ``p_teacher`` (the best
    teacher's p, which every class and statistic then uses), ``best_teacher`` (its name, NA
    when no teacher scored the action) and ``teacher_margin``. Any other table is returned as
    it is (a single-teacher table keeps its columns exactly)."""
    names = teacher_names(table)
    if len(names) < 2:
        return table
    top, index, margin = best_teacher(table[[TEACHER_PREFIX + n for n in names]].to_numpy(dtype=np.float64).T)
    best = pd.array([*names, None], dtype="str").take(np.where(index < 0, len(names), index))
    return table.assign(p_teacher=top, best_teacher=best, teacher_margin=margin)


def teacher_colors(names: list[str]) -> dict[str, str]:
    """A colour per named teacher (in the given order; the palette repeats past seven teachers)
    and :data:`SEVERAL_COLOR` for :data:`SEVERAL`."""
    return {**{n: TEACHER_COLORS[i % len(TEACHER_COLORS)] for i, n in enumerate(names)}, SEVERAL: SEVERAL_COLOR}
