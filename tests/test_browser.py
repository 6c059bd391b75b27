"""Real browser: `streamlit run app.py` + Playwright driving Debian's Chromium (never
`playwright install`), at 1400×900 like a researcher's laptop.

What a user does: open every page, click every download button and open what arrives, look at
every chart (its plot area, its legend, its axis labels), move β and watch the colours change.
Screenshots of every page land in ``out/screenshots/`` for a person to review.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from chart_geometry import measure_charts, overlapping
from conftest import DEMO, LAB, REPO
from rdpt_core.provenance import classify_table
from rdpt_core.render import class_counts
from rdpt_core.store import load_corpus

pytestmark = pytest.mark.slow
SHOTS = REPO / "out" / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# url path → what the page shows when it is ready
PAGES = {
    "": "Current set-up",
    "explorer": "Tokens of one action",
    "corpus": "Behaviours per class",
    "beta-tuning": "Overlap of every pair of classes",
    "models": "Memory before loading",
    "trajectories": "records of the dataset are not scored yet",
    "data-selection": "Export",
    "sources": "Length against difficulty",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app as `make app` starts it (``python -m rdpt_app``); its log is kept to check for
    server-side errors."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdpt_app", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not become healthy within 90 s")
    yield url, log_path
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed: apt-get install -y chromium (.ci/run does it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, url: str, path: str, query: str = ""):
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.goto(f"{url}/{path}{query}", wait_until="networkidle")
    page.get_by_text(PAGES[path], exact=False).first.wait_for(timeout=90_000)
    wait_idle(page)
    return page


def wait_idle(page, timeout: float = 90) -> None:
    """Until Streamlit has finished the run (no 'Running…' status) and charts are drawn."""
    deadline = time.monotonic() + timeout
    time.sleep(0.5)
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count()
        if not running:
            break
        time.sleep(0.3)
    time.sleep(1.0)  # vega-embed draws asynchronously after the delta arrives


def shoot(page, name: str) -> None:
    """The whole page: Streamlit scrolls its main section, not the window, so the viewport is
    stretched to the content's height for the picture (widths, and so the layout, stay)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 900")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], int(height))})
    time.sleep(0.5)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(VIEWPORT)


def visit(page, name: str) -> tuple[dict[str, bytes], int]:
    """Look at every chart and click every download button of the page, opening each tab in
    turn (what a tab hides is neither seen nor clickable). Returns the files that arrived, by
    name, and how many charts were measured."""
    got: dict[str, bytes] = {}
    measured: set[int] = set()
    tabs = page.locator('[data-testid="stTab"]')
    for tab in [None, *range(tabs.count())]:
        if tab is not None:
            tabs.nth(tab).click()
            wait_idle(page, 30)
        wait_charts_settled(page)
        for chart in check_charts(page, name):
            measured.add(chart["index"])
        shoot(page, name if tab is None else f"{name}-tab{tab + 1}")
        download_visible(page, got)
    return got, len(measured)


SETTLED_JS = r"""
() => {
  const shown = Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'))
    .filter(c => c.offsetParent !== null);
  const drawn = shown.filter(c => c.querySelector('svg.marks g.role-frame') || c.querySelector('canvas.marks'));
  return [shown.length, drawn.length];
}
"""


def wait_charts_settled(page, timeout: float = 90) -> None:
    """Until every chart shown is drawn and their number has held for three polls a second
    apart: on a loaded machine the run can end before vega-embed has drawn, or even before
    Streamlit has sent, the last chart (counting right after 'Running…' went missed some)."""
    deadline, history = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        shown, drawn = page.evaluate(SETTLED_JS)
        history.append((shown, drawn))
        if len(history) >= 3 and len(set(history[-3:])) == 1 and shown == drawn:
            return
        time.sleep(1.0)
    raise AssertionError(f"charts still changing after {timeout} s: (shown, drawn) {history[-5:]}")


def download_visible(page, got: dict[str, bytes]) -> None:
    """Click each visible download button and keep what arrives."""
    buttons = page.locator('[data-testid="stDownloadButton"] button')
    for i in range(buttons.count()):
        button = buttons.nth(i)
        if not button.is_visible():
            continue
        label = button.inner_text()
        with page.expect_download(timeout=120_000) as info:
            button.click()
        download = info.value
        assert download.failure() is None, (label, download.failure())
        body = Path(download.path()).read_bytes()
        assert body, f"{label}: the file that arrived is empty"
        got.setdefault(download.suggested_filename, body)


def check_file(name: str, body: bytes) -> None:
    """Each type opens as what it claims to be."""
    if name.endswith(".png"):
        assert body[:8] == b"\x89PNG\r\n\x1a\n", name
    elif name.endswith(".svg"):
        text = body.decode()
        assert text.lstrip().startswith("<svg") and "<script" not in text, name
    elif name.endswith(".csv"):
        assert len(pd.read_csv(io.BytesIO(body))) > 0, name
    elif name.endswith(".parquet"):
        assert len(pd.read_parquet(io.BytesIO(body))) > 0, name
    elif name.endswith(".jsonl"):
        assert all(json.loads(line) for line in body.decode().splitlines()), name
    elif name.endswith(".html"):
        text = body.decode()
        assert text.startswith("<!doctype html>") and "<script" not in text.lower(), name
    else:
        pytest.fail(f"unexpected download {name}")


def check_charts(page, name: str) -> list[dict]:
    """Measure the charts in view (those in a hidden tab have no geometry yet)."""
    charts = [c for c in measure_charts(page) if c.get("plot") is not None]
    for chart in charts:
        where = f"{name} chart {chart['index']}"
        assert chart["renderer"] == "svg", where
        assert chart["plot"]["height"] >= 150, (where, chart["plot"])
        for legend in chart["legends"]:
            assert legend["right"] <= VIEWPORT["width"], (where, legend)
        assert chart["outer"]["right"] <= VIEWPORT["width"] + 1, (where, chart["outer"])
        for axis in chart["axes"]:
            assert not overlapping(axis["labels"]), (where, axis)
            names = [*axis["hidden_labels"], *(label["text"] for label in axis["labels"])]
            if any(re.search(r"[A-Za-z_]{3,}", str(n)) for n in names):  # a category axis: show every name
                assert not axis["hidden_labels"], (where, axis["hidden_labels"])
    return charts


def page_counts(page) -> tuple[dict[str, int], Counter]:
    legend = page.eval_on_selector_all(
        ".rdpt-legend-item", "els => els.map(e => [e.dataset.cls, Number(e.dataset.count)])")
    spans = page.eval_on_selector_all(".rdpt-response .rdpt-act", "els => els.map(e => e.dataset.cls)")
    return dict(legend), Counter(spans)


def test_explorer_in_chromium_recolours_when_beta_moves(server, browser):
    from test_app import record_where_beta_matters

    url, _ = server  # the first visit of a fresh server is this deep link, as a shared link would be
    rid, rows = record_where_beta_matters(load_corpus(DEMO).actions("paper"))
    alerts: list[str] = []
    page = open_page(browser, url, "explorer", f"?record={rid}")
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    assert page.locator('[data-testid="stDialog"]').count() == 0  # no "Page not found"
    legend, spans = page_counts(page)
    expected = class_counts(classify_table(rows, 0.1, 0.1))
    assert legend == expected
    assert dict(spans) == {c: n for c, n in expected.items() if n}

    # the styled tooltip appears on hover, with the numbers
    first = page.locator(".rdpt-response .rdpt-act").first
    first.hover()
    tip = first.evaluate("e => getComputedStyle(e, '::after').content")
    assert "p_T" in tip and "Δ_TS" in tip

    # focus the β slider in the sidebar and step it down from 0.10 to 0.01 with the keyboard
    thumb = page.locator('[data-testid="stSidebar"] input[aria-label="β (Teacher / Student)"]')
    for _ in range(30):  # each key press reruns the app; go on until the slider says 0.01
        if float(thumb.evaluate("e => e.value")) <= 0.01 + 1e-9:
            break
        thumb.focus()
        page.keyboard.press("ArrowLeft")
        time.sleep(0.4)
    assert float(thumb.evaluate("e => e.value")) == pytest.approx(0.01)
    want = class_counts(classify_table(rows, 0.1, 0.01))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        legend, spans = page_counts(page)
        if legend == want:
            break
        time.sleep(0.5)
    shoot(page, "explorer-beta-0.01")
    assert legend == want, (legend, want)
    assert legend != expected
    assert dict(spans) == {c: n for c, n in want.items() if n}
    assert not alerts
    # the address bar is a link to this response of this dataset
    from urllib.parse import parse_qs, urlparse

    assert parse_qs(urlparse(page.url).query) == {"dataset": ["demo"], "record": [rid]}
    page.close()


def slide(page, label: str, target: float, key: str) -> None:
    """Step a sidebar slider to ``target`` with the keyboard, as a user does (each press reruns)."""
    thumb = page.locator(f'[data-testid="stSidebar"] input[aria-label="{label}"]')
    for _ in range(60):
        value = float(thumb.evaluate("e => e.value"))
        if abs(value - target) < 1e-9:
            return
        thumb.focus()
        page.keyboard.press(key)
        time.sleep(0.4)
    raise AssertionError(f"{label} stuck at {thumb.evaluate('e => e.value')}, wanted {target}")


def teacher_spans(page) -> list[tuple[str | None, str]]:
    """(attributed teacher, computed background) of each action span, in order."""
    return [tuple(x) for x in page.eval_on_selector_all(
        ".rdpt-response .rdpt-act", "els => els.map(e => [e.dataset.teacher || null, getComputedStyle(e).backgroundColor])")]


def test_explorer_in_chromium_colours_by_teacher_and_gamma_moves_them(server, browser):
    """A saved two-teacher dataset (probabilities set by hand: tests/test_app.py TWO_TEACHER_P):
    #0 is teacher a's (margin 0.4), #1 teacher b's (margin 0.15) until γ passes 0.15, #2 Shared."""
    from test_app import two_teacher_corpus

    from rdpt_core.workspace import Workspace
    import os

    corpus = two_teacher_corpus()
    dataset = Workspace(os.environ["RDPT_WORKSPACE_DIR"]).save("two teachers", corpus.records, corpus)
    url, _ = server
    page = open_page(browser, url, "explorer", f"?dataset={dataset}&record=two")
    page.get_by_text("Colour by").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stRadio"] label', has_text="teacher").first.click()
    wait_idle(page)
    blue, vermillion, black = "rgba(0, 114, 178, 0.35)", "rgba(213, 94, 0, 0.35)", "rgba(0, 0, 0, 0.35)"
    assert teacher_spans(page) == [("a", blue), ("b", vermillion), (None, "rgba(0, 0, 0, 0)")]
    second = page.locator(".rdpt-response .rdpt-act").nth(1)
    second.hover()
    tip = second.evaluate("e => getComputedStyle(e, '::after').content")
    assert "best teacher b  margin 0.150" in tip and "attributed to b" in tip
    shoot(page, "explorer-by-teacher")
    slide(page, "γ (which teacher)", 0.2, "ArrowRight")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and teacher_spans(page)[1][0] != "Several teachers":
        time.sleep(0.5)
    assert teacher_spans(page) == [("a", blue), ("Several teachers", black), (None, "rgba(0, 0, 0, 0)")]
    legend = dict(page.eval_on_selector_all(
        ".rdpt-legend-item[data-teacher]", "els => els.map(e => [e.dataset.teacher, Number(e.dataset.count)])"))
    assert legend == {"a": 1, "b": 0, "Several teachers": 1}
    shoot(page, "explorer-by-teacher-gamma-0.2")
    page.close()


LEGEND_TEXTS_JS = r"""
() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]')).map(
  c => Array.from(c.querySelectorAll('g.role-legend text')).map(t => t.textContent))
"""


def test_the_two_teacher_lab_in_chromium_draws_per_teacher_curves_and_its_ground_truth(server, browser):
    """The built-in two-teacher corpus on the Corpus page at 1400×900: the per-teacher curves
    chart measured like every chart (plot height, legends inside the viewport, no overlapping
    labels), its legend naming both teachers, its SVG download, and the ground-truth table."""
    url, _ = server
    page = open_page(browser, url, "corpus", "?dataset=ensemble")
    page.get_by_text("Against known teachers").first.wait_for(timeout=90_000)
    page.get_by_text("Attribution against the known teacher").first.wait_for(timeout=90_000)
    wait_charts_settled(page)
    charts = check_charts(page, "corpus-ensemble")
    legends = page.evaluate(LEGEND_TEXTS_JS)
    teacher = [i for i, texts in enumerate(legends) if "narrative" in texts and "steps" in texts]
    assert len(teacher) == 1, legends
    assert teacher[0] in {c["index"] for c in charts}  # measured, not only present
    shoot(page, "corpus-ensemble")
    got: dict[str, bytes] = {}
    download_visible(page, got)
    for name, body in got.items():
        check_file(name, body)
    assert {"rdpt-teacher-curves.svg", "rdpt-teacher-curves.png", "rdpt-report.html"} <= set(got)
    assert "narrative" in got["rdpt-teacher-curves.svg"].decode()
    assert "Which teacher (γ = 0.10)" in got["rdpt-report.html"].decode()
    page.close()
    # the explorer's teacher view of the same corpus: every attributed span in its teacher's colour
    page = open_page(browser, url, "explorer", "?dataset=ensemble")
    page.locator('[data-testid="stRadio"] label', has_text="teacher").first.click()
    wait_idle(page)
    spans = teacher_spans(page)
    colours = {"steps": "rgba(0, 114, 178, 0.35)", "narrative": "rgba(213, 94, 0, 0.35)",
               "Several teachers": "rgba(0, 0, 0, 0.35)"}
    assert any(t is not None for t, _ in spans)
    assert all(bg == colours[t] for t, bg in spans if t is not None), spans
    shoot(page, "explorer-ensemble-by-teacher")
    page.close()


def test_a_user_uploads_a_file_and_a_reload_keeps_it(server, browser):
    """Upload in Chromium: a file whose columns say nothing is refused until mapped; a good file
    becomes a saved dataset that a reload keeps, and its link opens it in the explorer."""
    from urllib.parse import parse_qs, urlparse

    url, _ = server
    page = open_page(browser, url, "trajectories")
    page.locator('[data-testid="stTab"]', has_text="Upload").click()
    upload = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    upload.set_input_files(files=[{"name": "ab.csv", "mimeType": "text/csv", "buffer": b"a,b\nq,r\n"}])
    page.get_by_text("ab.csv: choose the column that holds the prompt").first.wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Load this file").is_disabled()
    good = "".join(json.dumps({"record_id": f"u{i}", "prompt": f"What is {i} + 1?",
                               "response": f"{i} + 1 = {i + 1}. The answer is {i + 1}."}) + "\n" for i in range(3))
    upload.set_input_files(files=[{"name": "good.jsonl", "mimeType": "application/jsonl", "buffer": good.encode()}])
    page.get_by_role("button", name="Load this file").wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_role("button", name="Load this file").click()
    page.get_by_text("Loaded 3 records from good.jsonl").first.wait_for(timeout=60_000)
    dataset = parse_qs(urlparse(page.url).query)["dataset"][0]
    assert dataset.startswith("upload-good-jsonl-")
    page.reload(wait_until="networkidle")  # a reload keeps the uploaded dataset
    page.get_by_text("Upload: good.jsonl").first.wait_for(timeout=60_000)
    page.goto(f"{url}/explorer?dataset={dataset}&record=u0", wait_until="networkidle")
    page.get_by_text("This record has not been scored yet").first.wait_for(timeout=60_000)
    wait_idle(page)
    # the page stopped early (nothing to explore yet); the sidebar still names the dataset
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "Upload: good.jsonl" in sidebar and "3 records, 0 scored" in sidebar
    shoot(page, "explorer-uploaded-unscored")
    page.close()


def test_every_page_every_download_and_every_chart(server, browser):
    url, log_path = server
    downloads: dict[str, dict[str, bytes]] = {}
    drawn: dict[str, int] = {}
    for path in PAGES:
        page = open_page(browser, url, path)
        name = path or "home"
        if not path:  # the navigation names every page; no Deploy button for users
            nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
            assert [n.strip().splitlines()[-1] for n in nav] == ["Home", "Response explorer", "Corpus", "β tuning", "Models",
                                               "Trajectories", "Data selection", "Distillation sources"]
            assert page.get_by_text("Deploy", exact=True).count() == 0
        downloads[name], drawn[name] = visit(page, name)
        for file_name, body in downloads[name].items():
            check_file(file_name, body)
        page.close()
    # every chart has its two downloads; the data downloads are all there
    assert drawn == {"home": 0, "explorer": 1, "corpus": 4, "beta-tuning": 1, "models": 0, "trajectories": 0,
                     "data-selection": 2, "sources": 2}
    assert sorted(downloads["corpus"]) == sorted(
        ["rdpt-report.html"] + [f"rdpt-{s}.{e}" for s in ("curves", "n_j", "mean-probability", "behaviours")
                                for e in ("png", "svg")])
    assert {n.rsplit(".", 1)[1] for n in downloads["explorer"]} == {"csv", "parquet", "png", "svg"}
    assert len(downloads["explorer"]) == 5
    assert sorted(downloads["data-selection"]) == sorted(
        ["chosen-max_teacher_count.jsonl", "selection-features.csv", "rdpt-selection-report.html",
         "rdpt-selection.png", "rdpt-selection.svg", "rdpt-agreement.png", "rdpt-agreement.svg"])
    assert sorted(downloads["sources"]) == sorted(
        ["sources.csv", "source-responses.csv", "rdpt-sources-report.html", "rdpt-source-lengths.png",
         "rdpt-source-lengths.svg", "rdpt-length-vs-difficulty.png", "rdpt-length-vs-difficulty.svg"])
    assert sorted(downloads["beta-tuning"]) == ["rdpt-beta-histograms.png", "rdpt-beta-histograms.svg"]

    # what arrived is what the library computes
    check_chosen_jsonl(downloads["data-selection"]["chosen-max_teacher_count.jsonl"])
    corpus_report = downloads["corpus"]["rdpt-report.html"].decode()
    for section in ("Settings", "Class share by position", "Mean probability by position",
                    "Correct vs incorrect responses", "Choosing β", "Behaviours per class", "Example responses"):
        assert f"<h2>{section}</h2>" in corpus_report, section
    assert "<h2>Teacher-guided data selection</h2>" in downloads["data-selection"]["rdpt-selection-report.html"].decode()
    assert "<h2>Distillation sources</h2>" in downloads["sources"]["rdpt-sources-report.html"].decode()
    explorer_csv = pd.read_csv(io.BytesIO(next(b for n, b in downloads["explorer"].items()
                                               if n.endswith(".csv") and "tokens" not in n)))
    assert {"d_TS", "margin_alpha", "margin_beta", "to_flip", "cls"} <= set(explorer_csv.columns)

    log = log_path.read_text()
    assert "Traceback" not in log and "MediaFileStorageError" not in log, log[-3000:]
    assert "Inotify" not in log


def check_chosen_jsonl(body: bytes) -> None:
    """Every exported row is its input line (read here with json) plus the rdpt_* columns, and
    the picks are rdpt_core's."""
    from rdpt_core.selection import response_features, select

    inputs = {row["record_id"]: row for row in map(json.loads, (LAB / "teacher_samples.jsonl").read_text().splitlines())}
    rows = [json.loads(line) for line in body.decode().splitlines()]
    want = select(response_features(load_corpus(LAB / "teacher_corpus").actions("paper"), 0.1), "max_teacher_count")
    assert [r["record_id"] for r in rows] == want["record_id"].tolist()
    for row in rows:
        assert {k: v for k, v in row.items() if not k.startswith("rdpt_")} == inputs[row["record_id"]]
        assert row["rdpt_strategy"] == "max_teacher_count" and row["rdpt_beta"] == pytest.approx(0.1)


def test_report_opens_offline_with_every_chart_rendered(browser, tmp_path):
    from rdpt_core.report import build_report

    scores = pd.read_parquet(DEMO.parent / "demo_scores.parquet")
    path = tmp_path / "report.html"
    path.write_text(build_report(scores, 0.1, 0.1, min_n=5), encoding="utf-8")
    context = browser.new_context(offline=True)  # nothing may come from a network
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    charts = page.eval_on_selector_all(
        "[data-chart]", "els => els.map(e => [e.dataset.chart, e.querySelector('svg')?.getBBox().width || 0])")
    assert [name for name, _ in charts] == ["curves", "counts", "means", "beta", "behaviours"]
    assert all(width > 100 for _, width in charts)  # drawn, not empty
    assert page.locator(".rdpt-response").count() == 3
    assert requests == [path.as_uri()]
    shoot(page, "report")
    context.close()
