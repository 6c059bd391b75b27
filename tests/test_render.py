import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from rdpt_core.explore import with_margins
from rdpt_core.provenance import CLASS_COLORS, classify_table
from rdpt_core.render import (
    class_counts,
    highlighted_block,
    legend_html,
    response_html,
    token_strip_html,
    token_tooltip,
    tooltip,
    visible_whitespace,
)


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


# ---- CSS tooltips, legend colours, token strips ----------------------------------------------

class Spans(HTMLParser):
    """Attributes (unescaped by the parser) and inner text of every span with a given class."""

    def __init__(self, cls: str):
        super().__init__(convert_charrefs=True)
        self.cls, self.found, self._open = cls, [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and self.cls in (attrs.get("class") or "").split():
            self._open = {**attrs, "_text": ""}
            self.found.append(self._open)

    def handle_data(self, data):
        if self._open is not None:
            self._open["_text"] += data

    def handle_endtag(self, tag):
        self._open = None


def spans(markup: str, cls: str) -> list[dict]:
    parser = Spans(cls)
    parser.feed(markup)
    return parser.found


def test_actions_carry_css_tooltips_not_native_titles():
    t = with_margins(table(["One.", " Two."], [0.9, 0.5], [0.2, 0.5], [0.6, 0.5]), 0.1, 0.1)
    out = response_html(t)
    assert "title=" not in out
    assert "content: attr(data-tip)" in out and ".rdpt-act:hover::after" in out
    assert "position: relative" in out
    first = spans(out, "rdpt-act")[0]
    assert first["data-cls"] == "Teacher" and first["data-index"] == "0"
    tip = first["data-tip"]
    assert tip.splitlines()[0] == "#0 Teacher"
    assert "p_T 0.900  p_S 0.200  p_D 0.600" in tip
    assert "Δ_TS 0.700  Δ_TD 0.300  Δ_SD -0.400" in tip
    # to_flip: max|Δ| 0.7 − α 0.1 = 0.6, |Δ_TS| 0.7 − β 0.1 = 0.6
    assert "to flip 0.600" in tip
    assert "\n" not in out.split("</style>")[1].strip()  # newlines of tooltips are &#10;: one line of HTML


def test_tooltip_uses_the_shown_class_column():
    t = table(["One."], [0.9], [0.2])  # no D: cls3 only
    text = tooltip(t.iloc[0].to_dict(), "cls3")
    assert text.splitlines() == ["#0 Teacher", "p_T 0.900  p_S 0.200  p_D n/a", "Δ_TS 0.700"]
    assert spans(response_html(t, "cls3"), "rdpt-act")[0]["data-tip"] == text


def test_tooltip_escapes_data():
    t = table(["x"], [0.9], [0.2])
    t["cls3"] = ['<script>alert("c")</script>']
    out = response_html(t, "cls3")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert spans(out, "rdpt-act")[0]["data-tip"].startswith('#0 <script>alert("c")</script>')


def test_legend_swatches_have_the_class_colour():
    legend = legend_html({"Shared": 1, "Teacher": 2, "Unscored": 0})
    assert re.findall(r'class="rdpt-swatch" style="background:(#[0-9A-Fa-f]{6})"', legend) == [
        CLASS_COLORS["Shared"], CLASS_COLORS["Teacher"], CLASS_COLORS["Unscored"]]


def token_rows():
    rows = [
        ("teacher", 3, "<script>alert(1)</script>", -0.0), ("teacher", 4, " the\n", -2.302585092994046),
        ("student", 7, '"x" & y', float("nan")), ("student", 8, "\tz", -12.345678901234567),
        ("distilled", 1, " ok", -0.6931471805599453),
    ]
    frame = pd.DataFrame(rows, columns=["role", "token_index", "text", "logprob"])
    frame["p"] = np.exp(frame["logprob"])
    frame["scored"] = np.isfinite(frame["logprob"])
    return frame


def test_token_strip_marks_every_token_with_role_and_exact_logprob():
    tokens = token_rows()
    out = token_strip_html(tokens, {"teacher": "Teacher <SmolLM2>"})
    found = spans(out, "rdpt-tok")
    assert [s["data-role"] for s in found] == ["teacher", "teacher", "student", "student", "distilled"]
    assert [s["data-index"] for s in found] == ["3", "4", "7", "8", "1"]
    for s, lp in zip(found, tokens["logprob"]):
        got = float(s["data-logprob"])
        assert (np.isnan(got) and np.isnan(lp)) or abs(got - lp) < 1e-9
    assert [s["data-text"] for s in found] == tokens["text"].tolist()  # the real text, round-tripped
    assert [s["_text"] for s in found] == ["<script>alert(1)</script>", "·the⏎", '"x"·&·y', "→z", "·ok"]
    assert [s["data-scored"] for s in found] == ["true", "true", "false", "true", "true"]
    assert "Teacher &lt;SmolLM2&gt;" in out and ">student<" in out  # labels, default = the role
    assert re.findall(r'class="rdpt-tokline" data-role="(\w+)"', out) == ["teacher", "student", "distilled"]


def test_token_strip_escapes_untrusted_text():
    out = token_strip_html(token_rows())
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert '"x"' not in out.split("</style>")[1]  # quotes escaped, in attributes too
    tip = spans(out, "rdpt-tok")[0]["data-tip"]
    assert tip == token_tooltip("<script>alert(1)</script>", -0.0)
    assert "logprob -0.000  p 1.000" in tip


def test_token_tooltip_and_visible_whitespace():
    assert token_tooltip(" the\n", -2.302585092994046) == "' the\\n'\nlogprob -2.303  p 0.100"
    assert "not scored" in token_tooltip("x", float("nan"))
    assert visible_whitespace("a b\nc\td") == "a·b⏎c→d"


def test_token_colours_follow_p_on_the_viridis_scale():
    styles = [s["style"] for s in spans(token_strip_html(token_rows()), "rdpt-tok")]
    # p = 1 → viridis' yellow end with black text; p = exp(−12.3) ≈ 0 → its dark purple end with
    # white text; p = 0.1 → the 0.1 stop (#482475, dark: white text); unscored → grey
    assert styles[0] == "background:#fde725;color:#000"
    assert styles[3] == "background:#440154;color:#fff"
    assert styles[1] == "background:#482475;color:#fff"
    assert styles[2] == "background:#e0e0e0;color:#000"
    out = token_strip_html(token_rows())
    assert "rdpt-scale" in out and "linear-gradient" in out  # the colour-scale legend


def test_token_strip_of_no_tokens_is_just_the_legend():
    empty = token_rows().iloc[:0]
    assert spans(token_strip_html(empty), "rdpt-tok") == []
    assert "rdpt-scale" in token_strip_html(empty, with_css=False)


def test_escape_markdown_leaves_names_and_paths_readable_and_escapes_syntax():
    from rdpt_core.render import escape_markdown

    for plain in ("teacher: local model directory not found: /no/such/checkpoint", "Upload: mine.jsonl",
                  "smollm2-135m-instruct", "Qwen/Qwen3-8B (bf16), 3 records!"):
        assert escape_markdown(plain) == plain  # nothing that Markdown would change: left as it is
    assert escape_markdown("[x](javascript:alert(1))") == r"\[x\](javascript\:alert(1))"
    assert escape_markdown("**b** `c` $x$ &lt;") == r"\*\*b\*\* \`c\` \$x\$ \&lt;"
    assert escape_markdown("see www.evil.example or a@b.example") == r"see www\.evil.example or a\@b.example"
    # list, heading and quote markers only matter at the start of a block
    assert [escape_markdown(t) for t in ("- a - b", "12. x", "1) y", "# h", "> q")] == [
        r"\- a - b", r"12\. x", r"1\) y", r"\# h", r"\> q"]
    assert escape_markdown("  two\nlines \r\n") == "two lines"  # for inline use: one line, stripped


# ---- several teachers: the teacher view ---------------------------------------------------------
def teacher_table() -> pd.DataFrame:
    """Classified by hand (not by classify_table): #0 Teacher of a, #1 Boosted shared by several
    teachers, #2 Student (no teacher), #3 Teacher of a teacher whose name is hostile."""
    return pd.DataFrame({
        "action_index": [0, 1, 2, 3], "text": ["One.", " Two.", " Three.", " Four."], "kind": "sentence",
        "p_teacher_a": [0.9, 0.60, 0.1, 0.2], "p_teacher_<b>": [0.3, 0.55, 0.1, 0.8],
        "p_teacher": [0.9, 0.60, 0.1, 0.8], "p_student": [0.1, 0.5, 0.9, 0.1], "p_distilled": [0.5, 0.9, 0.9, 0.5],
        "best_teacher": ["a", "a", "a", "<b>"], "teacher_margin": [0.6, 0.05, 0.0, 0.6],
        "cls": ["Teacher", "Boosted", "Student", "Teacher"],
        "teacher_of": ["a", "Several teachers", None, "<b>"],
    })


def test_teacher_view_colours_attributed_actions_by_teacher_and_leaves_the_rest():
    out = highlighted_block(teacher_table(), "cls", by="teacher")
    spans = re.findall(r'<span class="rdpt-act [^"]*" data-cls="(\w+)"( data-teacher="([^"]+)")? '
                       r'data-index="(\d)" style="background:([^"]+)"', out)
    assert [(cls, teacher, bg) for cls, _, teacher, _, bg in spans] == [
        ("Teacher", "a", "rgba(0, 114, 178, 0.35)"),           # TEACHER_COLORS[0]
        ("Boosted", "Several teachers", "rgba(0, 0, 0, 0.35)"),  # SEVERAL_COLOR
        ("Student", "", "transparent"),
        ("Teacher", "&lt;b&gt;", "rgba(213, 94, 0, 0.35)"),    # TEACHER_COLORS[1], name escaped
    ]
    assert re.findall(r'data-teacher="([^"]+)" data-count="(\d)"', out) == [
        ("a", "1"), ("&lt;b&gt;", "1"), ("Several teachers", "1")]
    assert re.search(r"<b>(?!\d)", out) is None and "underline dotted" in out  # only the legend counts are bold


def test_teacher_tooltip_names_the_best_teacher_its_margin_and_the_attribution():
    rows = teacher_table().to_dict("records")
    lines = tooltip(rows[1]).splitlines()
    assert lines[-3:] == ["p_a 0.600  p_<b> 0.550", "best teacher a  margin 0.050", "attributed to Several teachers"]
    assert tooltip(rows[2]).splitlines()[-1] == "best teacher a  margin 0.000"  # a Student action: no attribution
    out = response_html(teacher_table())
    assert "p_&lt;b&gt; 0.550" in out  # escaped inside the attribute


def test_the_teacher_view_needs_attributions():
    single = table(["One."], [0.9], [0.2], [0.6])
    try:
        response_html(single, by="teacher")
    except ValueError as err:
        assert "teacher_of" in str(err)
    else:
        raise AssertionError("a single-teacher table has no teacher view")
    with pytest.raises(ValueError, match="teacher_of"):
        highlighted_block(single, by="teacher")
    assert "rdpt-by-teacher" not in highlighted_block(single) and "data-teacher" not in highlighted_block(single)


# Machado, Oliveira & Fernandes (2009) dichromat simulation at severity 1, on linear RGB
CVD = {
    "normal": np.eye(3),
    "protan": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                        [-0.003882, -0.048116, 1.051998]]),
    "deutan": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                        [-0.011820, 0.042940, 0.968881]]),
    "tritan": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                        [0.004733, 0.691367, 0.303900]]),
}


def seen_lab(background: str, vision: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an ``rgba(r, g, b, a)`` background over white, as a dichromat sees it."""
    r, g, b, a = (float(x) for x in re.findall(r"[\d.]+", background))
    srgb = (a * np.array([r, g, b]) + (1 - a) * 255) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ np.clip(
        vision @ linear, 0, 1)
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > 216 / 24389, np.cbrt(t), (24389 / 27 * t + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("n_teachers, least", [(2, 15.0), (3, 9.0)])
def test_teacher_colours_stay_apart_for_colour_vision_deficiencies(n_teachers, least):
    """The backgrounds the teacher view draws (each teacher, Several teachers, uncoloured), as
    seen with each dichromacy: every pair at least ``least`` apart in CIELAB ΔE (2.3 is a just
    noticeable difference)."""
    names = [f"t{i}" for i in range(n_teachers)]
    rows = pd.DataFrame({
        "action_index": range(n_teachers + 2), "text": "x", "kind": "sentence",
        **{f"p_teacher_{n}": 0.5 for n in names}, "p_teacher": 0.9, "p_student": 0.1, "p_distilled": 0.5,
        "best_teacher": "t0", "teacher_margin": 0.5, "cls": ["Teacher"] * (n_teachers + 1) + ["Student"],
        "teacher_of": [*names, "Several teachers", None]})
    backgrounds = re.findall(r'style="background:([^"]+)"', response_html(rows, by="teacher"))
    backgrounds = [b if b != "transparent" else "rgba(255, 255, 255, 1)" for b in backgrounds]
    assert len(set(backgrounds)) == n_teachers + 2
    for vision, matrix in CVD.items():
        labs = [seen_lab(b, matrix) for b in backgrounds]
        closest = min(np.linalg.norm(x - y) for i, x in enumerate(labs) for y in labs[i + 1:])
        assert closest >= least, (vision, round(float(closest), 2))
