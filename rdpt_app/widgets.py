"""Widgets shared by the pages: the sidebar, charts with their downloads, file downloads and a
progress bar. Each UI section is a function that draws itself and returns the user's choice."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from rdpt_core.charts import chart_png, chart_svg
from rdpt_core.records import RecordIssue
from rdpt_core.render import escape_markdown

from .state import SEGMENTERS, current_actions, has_named_teachers

log = logging.getLogger("rdpt_app")
Figure = alt.Chart | alt.LayerChart | alt.FacetChart | alt.HConcatChart | alt.VConcatChart | alt.ConcatChart
_COMPOSITE_KEYS = ("facet", "hconcat", "vconcat", "concat")  # a spec laid out in cells


def frozen(figure: Figure) -> dict[str, Any]:
    """A chart as its Vega-Lite spec, for a cached view. Streamlit converts an Altair chart,
    validating the whole spec with its inline rows, on every rerun (~0.03 s a corpus chart at
    10k responses, even when nothing changed); a spec is converted once, when the view is built."""
    return figure.to_dict()


def seeded(widget: Callable[..., Any], key: str, *args: Any, **kwargs: Any) -> Any:
    """A widget that edits the plain session key ``key``. Its own key (``w_<key>``) is seeded
    from it on every run and copies back on change: a plain key survives page switches and
    runs where the widget is not drawn, which a widget's own state does not."""
    ss = st.session_state
    ss[f"w_{key}"] = ss[key]
    return widget(*args, key=f"w_{key}", on_change=lambda: ss.update({key: ss[f"w_{key}"]}), **kwargs)


def sidebar() -> Any:
    """α, β, γ (several teachers only) and the segmenter (shared by every page: the sidebar is
    drawn once, by ``app.py``),
    and a placeholder for the dataset caption (``app.py`` fills it before the page and again
    after it, so it is never stale)."""
    st.sidebar.header("Provenance thresholds")
    seeded(st.sidebar.slider, "alpha", "α (Shared)", 0.0, 0.5, step=0.01,
            help="Shared when all three |Δ| ≤ α (Δ_SD, Δ_TD, Δ_TS)")
    seeded(st.sidebar.slider, "beta", "β (Teacher / Student)", 0.0, 0.5, step=0.01,
            help="Teacher when p_T − p_S > β, Student when p_S − p_T > β")
    if has_named_teachers():
        seeded(st.sidebar.slider, "gamma", "γ (which teacher)", 0.0, 0.5, step=0.01,
               help="A Teacher or Boosted action is attributed to the best teacher when its p beats every "
                    "other teacher's by more than γ, else to 'Several teachers'")
    seeded(st.sidebar.selectbox, "segmenter", "Segmenter", SEGMENTERS,
            help="paper: the paper's sentence rule; spacy: blank English sentencizer; paragraph: blank lines")
    return st.sidebar.empty()


def scored_actions() -> pd.DataFrame:
    """The working corpus's classified action table; when nothing is scored, a hint and the end
    of the page."""
    table = current_actions()
    if table is None:
        st.info("Nothing scored yet: score a dataset on the Trajectories page.")
        st.stop()
    return table


def dataset_caption(slot: Any) -> None:
    ss = st.session_state
    scored = len(ss.corpus.records) if ss.get("corpus") is not None else 0
    slot.caption(f"Dataset: **{escape_markdown(ss.dataset_name)}** · {len(ss.records)} records, {scored} scored")


def download(container: Any, label: str, build: Callable[[], bytes | str], file_name: str, mime: str,
             key: str, primary: bool = False, help: str | None = None) -> None:
    """A download button whose file is built only when clicked (slider moves stay instant).

    ``build`` runs outside the script run, where ``st.session_state`` does not exist: it must
    only use values captured when the button was drawn (e.g. :func:`rdpt_app.state.settings`).
    """
    def guarded() -> bytes | str:
        try:
            return build()
        except Exception:  # the browser gets no file: at least the log says why
            log.exception("building %s failed", file_name)
            raise

    container.download_button(label, guarded, file_name, mime, on_click="ignore", key=key, help=help,
                              type="primary" if primary else "secondary", icon=":material/download:")


def chart(figure: Figure | dict[str, Any], stem: str) -> None:
    """Draw an Altair chart (or its :func:`frozen` spec) with its PNG and SVG downloads. Single
    and layered views stretch to the column; faceted and concatenated charts keep their size."""
    spec = figure if isinstance(figure, dict) else figure.to_dict()
    composite = any(key in spec for key in _COMPOSITE_KEYS)
    st.vega_lite_chart(spec, width="content" if composite else "stretch")
    left, right, _ = st.columns([1, 1, 6])
    download(left, "PNG", lambda: chart_png(spec), f"rdpt-{stem}.png", "image/png", f"dl_png_{stem}",
             help=f"This chart as rdpt-{stem}.png (2× resolution)")
    download(right, "SVG", lambda: chart_svg(spec), f"rdpt-{stem}.svg", "image/svg+xml", f"dl_svg_{stem}",
             help=f"This chart as rdpt-{stem}.svg (vector, for papers)")


def issue_report(issues: list[RecordIssue]) -> None:
    """Lines of an input that could not be read: file, line, field, problem."""
    st.error(f"{len(issues)} line(s) could not be read; the other rows were kept.")
    st.dataframe(pd.DataFrame([{"file": i.file, i.unit: i.line, "field": i.field, "problem": i.message}
                               for i in issues]), hide_index=True)


class StreamlitProgress:
    """A ``rdpt_core.scoring.ProgressBar`` drawn with ``st.progress``: done/total, rate, time left."""

    def __init__(self, desc: str, total: int) -> None:
        self.desc, self.total, self.done = desc, max(total, 1), 0
        self.started = time.perf_counter()
        self.bar = st.progress(0.0, text=f"{desc}: 0/{total}")

    def update(self, n: int = 1) -> None:
        self.done += n
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        self.bar.progress(min(self.done / self.total, 1.0),
                          text=f"{self.desc}: {self.done}/{self.total} · {rate:.2f} records/s · ~{left:.0f} s left")

    def close(self) -> None:
        self.bar.progress(1.0, text=f"{self.desc}: done")
