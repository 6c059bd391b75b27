import re

import pandas as pd

from rdpt_core.provenance import classify_table
from rdpt_core.render import class_counts, highlighted_block, legend_html, response_html, tooltip


def table(texts, pt, ps, pd_=None):
    data = {"action_index": range(len(texts)), "text": texts, "kind": "sentence", "p_teacher": pt, "p_student": ps}
    if pd_ is not None:
        data["p_distilled"] = pd_
    return classify_table(pd.DataFrame(data), 0.1, 0.1)


def test_untrusted_text_is_escaped_and_inert():
    evil = ['<script>alert(1)</script>', ' <img src=x onerror="alert(2)">', ' "quoted" & <b>bold</b>']
    out = response_html(table(evil, [0.9, 0.5, 0.1], [0.1, 0.5, 0.9], [0.5, 0.5, 0.5]))
    assert "<script>" not in out and "<img" not in out and "<b>" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "onerror=&quot;alert(2)&quot;" in out
    assert "&amp;" in out


def test_every_action_is_one_span_with_its_class_in_order():
    t = table(["One.", " Two.", " Three."], [0.9, 0.5, 0.1], [0.1, 0.5, 0.9], [0.5, 0.5, 0.5])
    out = response_html(t)
    assert re.findall(r'data-cls="(\w+)"', out) == ["Teacher", "Shared", "Student"]
    assert re.findall(r'data-index="(\d+)"', out) == ["0", "1", "2"]


def test_tooltip_shows_probabilities_and_deltas():
    t = table(["One."], [0.9], [0.2], [0.6])
    text = tooltip(t.iloc[0].to_dict())
    assert "p_T 0.900" in text and "p_S 0.200" in text and "p_D 0.600" in text
    assert "Δ_SD -0.400" in text and "Δ_TD 0.300" in text and "Δ_TS 0.700" in text


def test_legend_counts_match_the_classes():
    t = table(["a", "b", "c", "d"], [0.9, 0.9, 0.5, float("nan")], [0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5])
    counts = class_counts(t)
    assert counts == {"Shared": 1, "Teacher": 2, "Student": 0, "Boosted": 0, "Unscored": 1}
    legend = legend_html(counts)
    assert re.findall(r'data-cls="(\w+)" data-count="(\d+)"', legend) == [
        ("Shared", "1"), ("Teacher", "2"), ("Student", "0"), ("Boosted", "0"), ("Unscored", "1")]
    assert class_counts(t, "cls3") == {"Common": 1, "Teacher": 2, "Student": 0, "Unscored": 1}
    assert "rdpt-legend" in highlighted_block(t)
