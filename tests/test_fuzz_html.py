"""Hostile text from data renders inert everywhere (issue 12).

Prompts, responses, record ids, source names, model labels, dataset names and column names are
untrusted. Generated hostile strings (script tags, event-handler attributes, ``javascript:``
links, Markdown links/images/emphasis/code, ``$`` math, entities, Streamlit directives) go
through the HTML renderers, the report, the chart exports and, for a few fixed records, every
app page. The checks share no code with the renderers:

* HTML (``st.html`` bodies, the report, SVG exports) is parsed with ``html.parser``: no
  script-like tag, no ``on*`` attribute, no ``javascript:``/``data:`` URL, and the payload
  comes back as text where it is shown whole;
* Markdown (``st.markdown``/``st.caption``/alerts/headings/widget labels) is rendered with
  markdown-it (CommonMark, HTML off, as Streamlit without ``unsafe_allow_html``), then checked
  the same way: no link or image at all, the payload shown verbatim (so no emphasis, code or
  entity ate part of it), and none of Streamlit's own syntax left unescaped in the source
  (``$`` math, ``:colour[…]`` directives, bare URLs it would autolink).

Hypothesis runs seeded (``derandomize``), so a failure reproduces.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from rdpt_core.charts import chart_svg, length_difficulty_chart, length_histogram_chart, response_chart
from rdpt_core.provenance import classify_table
from rdpt_core.render import escape_markdown, highlighted_block, response_html, token_strip_html
from rdpt_core.report import build_report

MARKER = "ZQJ"  # starts every payload; no page text has it
FRAGMENTS = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>", '" onmouseover="alert(1)',
    "' onfocus='alert(1)' x='", "javascript:alert(1)", "[x](javascript:alert(1))", "![i](javascript:alert(1))",
    "<a href=javascript:alert(1)>a</a>", "**bold**", "__under__", "*em*", "`code`", "```", "$x^2$", "$$a$$",
    "&lt;b&gt;", "&amp;", "&#60;script&#62;", "<!--", "-->", "]]>", "\\", "\n", "\r\n", "\t", "# h", "- item",
    "> quote", "|a|b|", "~~s~~", ":red[x]", ":material/home:", "www.evil.example", "https://evil.example/x",
    "<https://evil.example>", "mail@evil.example", "{{x}}", "%s", "'", '"', "</style>", "</div>", "\u202e",
    "[x]: javascript:alert(1)", "[ref][x]",
]
SYNTAX_CHARS = "ab1 .<>&\"'`*_$:[]()!#-+\n"
HOSTILE_TEXT = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet=SYNTAX_CHARS, max_size=4)),
                        min_size=1, max_size=6).map("".join).filter(str.strip)
PAYLOAD = HOSTILE_TEXT.map(lambda text: MARKER + text)  # the marker finds it again on a page
CASES = {"render": 40, "markdown": 40, "charts": 8, "report": 6}  # generated cases per run (≥ 60 in all)


def fuzz(area: str) -> settings:
    """Seeded (derandomised: a failure reproduces), no deadline (vl-convert's first call is slow)."""
    return settings(derandomize=True, deadline=None, max_examples=CASES[area],
                    suppress_health_check=[HealthCheck.too_slow])


# ---- the oracles --------------------------------------------------------------------------------
LIVE_TAGS = {"script", "iframe", "frame", "object", "embed", "foreignobject", "img", "a", "form", "base", "link",
             "input", "button", "video", "audio", "source", "use"}
URL_ATTRS = {"href", "src", "xlink:href", "action", "formaction", "srcset", "background"}


class Audit(HTMLParser):
    """Every start tag with its attributes (entities decoded) and the document's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def audit(markup: str) -> Audit:
    found = Audit()
    found.feed(markup)
    found.close()
    return found


def live_html(markup: str) -> list[str]:
    """What in ``markup`` could run script or navigate: the tags, handlers and URLs."""
    problems = []
    for tag, attrs in audit(markup).tags:
        if tag in LIVE_TAGS:
            problems.append(f"<{tag}> tag")
        for name, value in attrs:
            if name.startswith("on"):
                problems.append(f"{name}= on <{tag}>")
            url = re.sub(r"[\s\x00-\x1f]", "", value or "").lower()
            if name in URL_ATTRS and url.startswith(("javascript:", "data:", "vbscript:")):
                problems.append(f"{name}={value!r} on <{tag}>")
    return problems


TABLE_ESCAPES = str.maketrans({"\n": "\\n", "\t": "\\t", "\r": "\\r"})


def normal(text: str) -> str:
    return " ".join(text.split())


def shown_text(markup: str) -> str:
    return normal("".join(audit(markup).text))


MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])
# markdown-it drops javascript: links by itself; Streamlit's renderer may not: let every URL through, so a
# link the source makes is seen (and flagged) whatever its scheme
MARKDOWN.validateLink = lambda url: True
STREAMLIT_SYNTAX = {  # what Streamlit's Markdown adds to CommonMark, unescaped
    "$ math": re.compile(r"(?<!\\)\$"),
    ":directive[": re.compile(r"(?<!\\):[a-z][\w-]*(?<!\\)\["),
    "bare URL (autolinked)": re.compile(r"(?<![\\\w])(?:https?(?<!\\):|www(?<!\\)\.)"),
    "e-mail (autolinked)": re.compile(r"\w(?<!\\)@\w"),
}


def markdown_problems(source: str) -> list[str]:
    """What a Markdown ``source`` would turn into more than text: links, images, HTML, and
    Streamlit's own syntax left unescaped."""
    problems = live_html(MARKDOWN.render(source))
    return problems + [f"unescaped {name} in {source!r}" for name, rule in STREAMLIT_SYNTAX.items()
                       if rule.search(source)]


def live_markdown(source: str, payloads: list[str]) -> list[str]:
    """:func:`markdown_problems`, and each payload the source carries (found by its first word,
    :func:`hostile`'s tag) shown verbatim: no emphasis, code span or entity ate part of it."""
    problems = markdown_problems(source)
    text = shown_text(MARKDOWN.render(source))
    source = source.replace("\\", "")
    return problems + [f"payload not shown verbatim: {payload!r} -> {text!r}" for payload in payloads
                       if payload.split(" ")[0] + " " in source and normal(payload) not in text]


# ---- generated payloads through the pure renderers ---------------------------------------------------

def actions_of(texts: list[str], record_id: str = "r0") -> pd.DataFrame:
    n = len(texts)
    return classify_table(pd.DataFrame({
        "record_id": record_id, "question_id": "q", "action_index": range(n), "text": texts, "kind": "sentence",
        "correct": True, "p_teacher": np.linspace(0.9, 0.1, n), "p_student": np.linspace(0.1, 0.9, n),
        "p_distilled": 0.5, "cum_tokens": np.arange(1, n + 1) * 100}), 0.1, 0.1)


@fuzz("render")
@given(texts=st.lists(PAYLOAD, min_size=1, max_size=3), label=PAYLOAD)
def test_highlighted_responses_and_token_strips_keep_hostile_text_as_text(texts, label):
    actions = actions_of(texts)
    for markup in (response_html(actions), highlighted_block(actions)):
        assert live_html(markup) == []
        assert normal("".join(texts)) in shown_text(markup)
    tokens = pd.DataFrame({"role": ["teacher", label], "token_index": [0, 1], "text": [texts[0], label],
                           "logprob": [-0.5, float("nan")]})
    strip = token_strip_html(tokens, {"teacher": label})
    assert live_html(strip) == []
    found = audit(strip)
    assert texts[0] in [dict(attrs).get("data-text") for _, attrs in found.tags]  # round-trips exactly
    assert normal(label) in shown_text(strip)


@fuzz("markdown")
@given(text=HOSTILE_TEXT)
def test_escaped_markdown_shows_the_text_and_nothing_else(text):
    for source, shown in ((escape_markdown(text), text),  # a whole message (st.error of an exception)
                          (f"Dataset: **{escape_markdown(text)}** · 3 records", f"Dataset: {text} · 3 records")):
        assert markdown_problems(source) == []
        assert shown_text(MARKDOWN.render(source)) == normal(shown)


def test_the_markdown_oracle_catches_what_streamlit_would_render():
    """The checks above can fail: raw payloads in Markdown are caught."""
    for raw in ("[x](javascript:alert(1))", "![i](x.png)", "**b**", "`c`", "$x$", ":red[x]", " www.evil.example",
                "&lt;b&gt;", "mail@evil.example"):
        payload = f"{MARKER}-oracle {raw}"
        assert live_markdown(f"Dataset: {payload}", [payload]), raw
    assert live_html('<span onclick="x">a</span>') and live_html("<a href=' javascript:x'>a</a>")
    assert live_html("<script>x</script>") and not live_html("<span data-tip='&lt;script&gt;'>a</span>")


@pytest.mark.slow
@fuzz("charts")
@given(sources=st.lists(PAYLOAD, min_size=2, max_size=3, unique=True), text=PAYLOAD)
def test_svg_chart_exports_keep_hostile_names_as_text(sources, text):
    hist = pd.DataFrame({"source": sources, "bin_start": 0.0, "bin_end": 10.0, "count": range(1, len(sources) + 1)})
    points = pd.DataFrame({"source": sources, "question_id": text, "mean_length": 5.0, "solve_rate": 0.5})
    svgs = [chart_svg(chart) for chart in (length_histogram_chart(hist), length_difficulty_chart(points),
                                           response_chart(actions_of([text])))]
    assert [live_html(svg) for svg in svgs] == [[], [], []]
    legend = shown_text(svgs[0])
    # a legend label may be cut with an ellipsis, never turned into markup
    assert all(normal(s)[:20] in legend or normal(s)[:10] in legend for s in sources)


@pytest.mark.slow
@fuzz("report")
@given(record_id=PAYLOAD, text=PAYLOAD, title=PAYLOAD, setting=PAYLOAD, source=PAYLOAD)
def test_the_report_keeps_hostile_ids_texts_titles_and_sources_as_text(record_id, text, title, setting, source):
    table = pd.concat([actions_of([text, " Then."], record_id), actions_of([" Fine.", text], "plain")
                       .assign(correct=False)], ignore_index=True).drop(columns=["cls"])
    sources = pd.DataFrame({"record_id": ["a", "b"], "question_id": [text, text], "source": [source, "plain"],
                            "correct": pd.array([True, False], dtype="boolean"), "n_tokens": [10, 20],
                            "n_chars": [40, 80], "sum_logp": [-5.0, -9.0], "n_logp": [10, 20]})
    page = build_report(table, 0.1, 0.1, {setting: setting}, min_n=1, n_examples=2, title=title, sources=sources)
    assert live_html(page) == []
    shown = shown_text(page)
    for payload in (record_id, text, title, setting, source):  # tables (pandas) write line breaks, tabs as \n, \t
        assert normal(payload) in shown or normal(payload.translate(TABLE_ESCAPES)) in shown
    assert html.escape(title) in page


# ---- fixed hostile records through every app page (streamlit AppTest) ------------------------------

def hostile(field: str) -> str:
    """A fixed hostile string naming the field it is put in (so a failure says where it leaked)."""
    return (f"{MARKER}-{field} <script>alert(1)</script> [x](javascript:alert(1)) ![i](javascript:alert(2)) **b** "
            "`c` $x$ :red[r] &lt;i&gt; <img src=x onerror=alert(3)> www.evil.example")


SKIP_FIELDS = {"id", "type", "icon", "deferred_file_id", "tag", "format", "theme", "name", "raw_value", "default",
               "placeholder", "value", "spec", "columns", "form_id", "url", "page_script_hash", "data", "set_value"}
PLAIN_ELEMENTS = {"text", "code", "dataframe", "arrow_data_frame", "vega_lite_chart", "json"}  # shown as text
PLAIN_OPTIONS = {"selectbox", "multiselect"}  # their options are plain text; a radio's are Markdown


def proto_strings(message, prefix: str = ""):
    from google.protobuf.message import Message

    for field, value in message.ListFields():
        if isinstance(value, (bool, int, float, bytes)):
            continue
        values = [value] if isinstance(value, (str, Message)) else list(value)
        for item in values:
            if isinstance(item, str):
                yield prefix + field.name, item
            elif isinstance(item, Message):
                yield from proto_strings(item, prefix + field.name + ".")


def page_problems(at) -> list[str]:
    """Every string of the page that carries a payload, checked as what Streamlit renders it as:
    ``st.html`` as HTML, text/code/tables/charts as text, everything else as Markdown."""
    from google.protobuf.message import Message

    problems, payloads = [], [hostile(f) for f in FIELDS]
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if not isinstance(proto, Message) or node.type in PLAIN_ELEMENTS:
            continue
        for field, text in proto_strings(proto):
            leaf = field.rsplit(".", 1)[-1]
            if MARKER not in text or leaf in SKIP_FIELDS or (node.type in PLAIN_OPTIONS and leaf == "options"):
                continue
            found = live_html(text) if node.type == "html" else live_markdown(text, payloads)
            problems += [f"{node.type}.{field}: {problem}" for problem in found]
    return problems


FIELDS = ("dataset", "record", "question", "prompt", "response", "source", "teacher-label", "student-label",
          "distilled-label", "model-path", "file", "column", "dataset-link", "record-link")
# Pages and code owned elsewhere that still show untrusted text as Markdown (the fix: wrap it in
# rdpt_core.render.escape_markdown). Strict: once fixed these pass, and the mark must go.
def hostile_corpus(models: dict[str, str] | None = None, fingerprints: dict[str, str] | None = None):
    """Two scored records whose every text field is hostile (one token per character; the roles
    disagree, so the classes differ), said to be scored by ``fingerprints``."""
    from rdpt_core.backends.base import TokenScores
    from rdpt_core.records import Record
    from rdpt_core.scoring import ScoredCorpus

    records = [Record(hostile("record") + suffix, hostile("question"), hostile("prompt"),
                      f"First step. {hostile('response')}. Then done.", ok, hostile("source"))
               for suffix, ok in (("", True), (" 2", False))]

    def scores(text: str, level: float) -> TokenScores:
        n = len(text)
        return TokenScores(np.arange(n), np.stack([np.arange(n), np.arange(n) + 1], 1),
                           np.linspace(level, -0.05, n), np.zeros(n, bool), np.zeros(n, bool))

    levels = {"teacher": -0.1, "student": -3.0, "distilled": -1.0}
    tokens = {role: {r.record_id: scores(r.response, level) for r in records} for role, level in levels.items()}
    labels = models or {role: hostile(f"{role}-label") for role in levels}
    return ScoredCorpus(records, tokens, (), labels, fingerprints or {})


def hostile_app(page_name: str, corpus=None, choices: bool = False):
    from test_app import page, with_dataset

    from rdpt_app.state import default_choice

    corpus = corpus or hostile_corpus()
    at = with_dataset(corpus.records, corpus, hostile("dataset"))
    if choices:  # a model path typed on the Models page
        at.session_state["choices"] = {role: default_choice(role) for role in ("teacher", "student", "distilled")}
        at.session_state["choices"]["teacher"].update(source="hub id or local dir", name="/" + hostile("model-path"))
    return page(page_name, at).run()


def assert_inert(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert page_problems(at) == []


def test_the_page_oracle_sees_a_raw_payload():
    """The page check can fail: an unescaped payload in a caption is caught."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(f"import streamlit as st\nst.caption({hostile('dataset')!r})").run()
    assert any("link" in p or "<a>" in p or "verbatim" in p for p in page_problems(at))


@pytest.mark.parametrize("page_name, choices", [
    ("home", True), ("explorer", False), ("corpus", False), ("beta_tuning", False), ("models", True),
])
def test_hostile_records_render_inert_on_the_page(page_name, choices):
    at = hostile_app(page_name, choices=choices)
    assert_inert(at)
    if page_name == "explorer":  # the response reached the page (as st.html), and its prompt as text
        assert any(MARKER + "-response" in h.proto.body for h in at.html)
        assert any(t.value == hostile("prompt") for t in at.text)


def test_hostile_source_names_render_inert_on_the_sources_page():
    from rdpt_app.state import default_choice
    from rdpt_core.models import resolve_spec

    from rdpt_core.backends import create_backend

    specs = {role: resolve_spec(default_choice(role)["name"]) for role in ("teacher", "student", "distilled")}
    labels = {role: spec.label for role, spec in specs.items()}
    fingerprints = {role: create_backend(spec).fingerprint for role, spec in specs.items()}
    at = hostile_app("sources", hostile_corpus(labels, fingerprints))  # scored by the Models page's models: no new scoring
    at.radio(key="src_data").set_value("Working dataset (Trajectories page), grouped by source").run()
    assert_inert(at)
    assert not any(b.key == "src_score" for b in at.button)


@pytest.mark.slow
def test_hostile_records_render_inert_on_the_data_selection_page():
    at = hostile_app("data_selection")
    at.radio(key="sel_data").set_value("Working dataset (Trajectories page)").run()
    assert_inert(at)


def test_hostile_file_and_column_names_render_inert_on_the_trajectories_page():
    at = hostile_app("trajectories")
    data = f'"{hostile("column")}",b\nwhat is 2+2?,4\n'.encode()  # the column names cannot be mapped
    at.file_uploader[0].set_value((hostile("file") + ".csv", data, "text/csv")).run()
    assert_inert(at)
    assert any(MARKER + "-file" in e.value for e in at.error)  # the mapping problem names the file


def test_a_hostile_shared_link_renders_inert():
    from test_app import app

    at = app(dataset=hostile("dataset-link"), record=hostile("record-link")).run()
    assert any(MARKER in w.value for w in at.warning)  # the notice quotes the link
    assert_inert(at)
