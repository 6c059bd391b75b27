"""Numbers for docs/lab.md: what the provenance classes look like on the demo corpus."""

from __future__ import annotations

import pandas as pd

from rdpt_core.provenance import CLASSES_4, UNSCORED, classify_table


def class_summary(actions: pd.DataFrame, alpha: float = 0.1, beta: float = 0.1, min_n: int = 10) -> dict[str, pd.DataFrame]:
    """Class shares overall and for correct vs incorrect responses, and the Teacher share by
    action position (positions with at least ``min_n`` responses)."""
    table = classify_table(actions, alpha, beta)
    scored = table[table["cls"] != UNSCORED]
    overall = scored["cls"].value_counts().reindex(CLASSES_4, fill_value=0)
    by_correct = (scored.assign(answer=scored["correct"].map({True: "correct", False: "incorrect"}))
                  .groupby("answer")["cls"].value_counts(normalize=True).unstack(fill_value=0.0)
                  .reindex(columns=list(CLASSES_4), fill_value=0.0))
    by_correct["responses"] = scored.groupby(scored["correct"].map({True: "correct", False: "incorrect"}))["record_id"].nunique()
    positions = scored.groupby("action_index").agg(
        n=("record_id", "nunique"), teacher_share=("cls", lambda c: (c == "Teacher").mean()),
        boosted_share=("cls", lambda c: (c == "Boosted").mean()))
    return {
        "overall": pd.DataFrame({"actions": overall, "share": (overall / overall.sum()).round(3)}),
        "by_correct": by_correct.round(3),
        "by_position": positions[positions["n"] >= min_n].round(3),
        "unscored": pd.DataFrame({"actions": [int((table["cls"] == UNSCORED).sum())]}),
    }


def markdown(summary: dict[str, pd.DataFrame]) -> str:
    return "\n\n".join(f"### {name}\n\n```\n{frame.to_string()}\n```" for name, frame in summary.items())
