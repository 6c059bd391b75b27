"""Real browser: `streamlit run` + Playwright driving Debian's Chromium (never `playwright install`)."""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest

from conftest import DEMO, REPO
from rdpt_core.provenance import classify_table
from rdpt_core.render import class_counts
from rdpt_core.store import load_corpus

pytestmark = pytest.mark.slow
SHOTS = REPO / "out" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed: apt-get install -y chromium (.ci/run does it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def page_counts(page) -> tuple[dict[str, int], Counter]:
    legend = page.eval_on_selector_all(
        ".rdpt-legend-item", "els => els.map(e => [e.dataset.cls, Number(e.dataset.count)])")
    spans = page.eval_on_selector_all(".rdpt-response .rdpt-act", "els => els.map(e => e.dataset.cls)")
    return dict(legend), Counter(spans)


def test_explorer_in_chromium_recolours_when_beta_moves(app_url, browser):
    from test_app import record_where_beta_matters

    rid, rows = record_where_beta_matters(load_corpus(DEMO).actions("paper"))
    alerts = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    page.goto(f"{app_url}/Explorer?record={rid}", wait_until="networkidle")
    page.wait_for_selector(".rdpt-legend-item", timeout=60_000)
    legend, spans = page_counts(page)
    expected = class_counts(classify_table(rows, 0.1, 0.1))
    assert legend == expected
    assert {c: n for c, n in spans.items()} == {c: n for c, n in expected.items() if n}

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
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "explorer-beta-0.01.png"), full_page=True)
    assert legend == want, (legend, want)
    assert legend != expected
    assert {c: n for c, n in spans.items()} == {c: n for c, n in want.items() if n}
    assert not alerts
    page.close()


def test_report_opens_offline_with_every_chart_rendered(browser, tmp_path):
    import pandas as pd

    from rdpt_core.report import build_report

    scores = pd.read_parquet(DEMO.parent / "demo_scores.parquet")
    path = tmp_path / "report.html"
    path.write_text(build_report(scores, 0.1, 0.1, min_n=5), encoding="utf-8")
    context = browser.new_context(offline=True)  # nothing may come from a network
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    charts = page.eval_on_selector_all(
        "[data-chart]", "els => els.map(e => [e.dataset.chart, e.querySelector('svg')?.getBBox().width || 0])")
    assert [name for name, _ in charts] == ["curves", "counts", "means", "beta", "behaviours"]
    assert all(width > 100 for _, width in charts)  # drawn, not empty
    assert page.locator(".rdpt-response").count() == 3
    assert requests == [path.as_uri()]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
    context.close()
