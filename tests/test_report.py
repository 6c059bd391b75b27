import re

import numpy as np
import pandas as pd

from rdpt_core.report import build_report


def synthetic(n_resp=30, n_act=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_resp):
        for j in range(n_act):
            rows.append({"record_id": f"r{r}", "question_id": f"q{r % 5}", "action_index": j, "kind": "sentence",
                         "text": f" Step {j} <b>of</b> r{r}." if j else "<script>alert(1)</script>",
                         "correct": r % 3 != 0, "p_teacher": rng.random(), "p_student": rng.random(),
                         "p_distilled": rng.random(), "cum_tokens": 500 * (j + 1)})
    return pd.DataFrame(rows)


def test_report_is_self_contained_with_every_section_and_escaped_text():
    page = build_report(synthetic(), 0.1, 0.1, {"teacher": "T <x>"}, n_examples=2)
    assert page.startswith("<!doctype html>")
    assert "<script" not in page.lower()  # no JS at all, and the response's script tag is text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "T &lt;x&gt;" in page
    charts = re.findall(r'data-chart="(\w+)"><svg', page)
    assert charts == ["curves", "counts", "means", "beta"]
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing fetched from a network
    for heading in ("Settings", "Class share by position", "Correct vs incorrect responses", "Choosing β",
                    "Behaviours per class", "Example responses"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count('class="rdpt-response"') == 2
