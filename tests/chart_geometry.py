"""Geometry of the Vega charts on a Streamlit page, measured in a real browser (Playwright).

Used by browser tests; holds no tests itself.

How it reaches the geometry
---------------------------
Streamlit 1.67 draws ``st.altair_chart`` with vega-embed inside ``[data-testid="stVegaLiteChart"]``
and passes no ``renderer``, so vega-embed's default, canvas, applies (Streamlit even forces canvas
for charts of more than 2,000 points per mark unless the spec names a renderer).  A canvas
carries no geometry.  But Streamlit forwards ``usermeta.embedOptions.renderer`` from the spec to
vega-embed (it keeps ``theme``, ``renderer`` and ``padding`` of ``embedOptions``), so every chart
of ``rdpt_core.charts`` sets ``usermeta = {"embedOptions": {"renderer": "svg"}}`` and the page holds
Vega's SVG scenegraph, ``svg.marks``, whose groups carry Vega's role classes:

* plot areas: every mark group of role ``frame`` (the root) or ``scope`` (facet cells, concat
  views) that directly holds data marks (``g.role-mark``); its ``path.background`` is the group's
  width × height rectangle, i.e. the data rectangle without axes, legends or titles.  For a facet
  or concat chart the plot area is the union of the cells' rectangles (header groups hold no
  data marks, so they never count).
* legends: each item of ``g.role-legend`` (its bounding box: symbols, labels and title);
* axis labels: per axis (each item of ``g.role-axis``), the visible ``text`` elements of its
  ``g.role-axis-label`` (labels that Vega hid for overlap have opacity 0 and are counted apart).

Boxes come from ``getBoundingClientRect`` (CSS pixels, relative to the viewport; Streamlit
scrolls its main section, not the window, so compare x edges with the viewport width directly).
A chart drawn on canvas, or not laid out (in a hidden tab), is reported with ``plot: None`` and no
geometry; a laid-out chart whose plot collapsed keeps its cells, at 0 px.

``wait_for_charts(page, n)`` waits until ``n`` charts have rendered; ``overlapping(boxes)`` finds
overlapping boxes (rotated axis labels are compared as their own rotated rectangles, from
``corners``: the label's ``getBBox()`` mapped through ``getScreenCTM()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MEASURE_JS = r"""
() => {
  const box = (r) => ({x: r.left, y: r.top, width: r.width, height: r.height, right: r.right, bottom: r.bottom});
  const union = (boxes) => {
    if (!boxes.length) return null;
    const x = Math.min(...boxes.map(b => b.x)), y = Math.min(...boxes.map(b => b.y));
    const right = Math.max(...boxes.map(b => b.right)), bottom = Math.max(...boxes.map(b => b.bottom));
    return {x, y, width: right - x, height: bottom - y, right, bottom};
  };
  const hidden = (el) => {
    for (let e = el; e && e.tagName && e.tagName.toLowerCase() !== 'svg'; e = e.parentNode) {
      if (e.getAttribute('opacity') === '0' || getComputedStyle(e).opacity === '0'
          || getComputedStyle(e).display === 'none' || getComputedStyle(e).visibility === 'hidden') return true;
    }
    return false;
  };
  // a label's own (possibly rotated) rectangle: its local bbox mapped through the screen CTM
  const corners = (el) => {
    const b = el.getBBox(), m = el.getScreenCTM();
    if (!m) return null;
    return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
      .map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
  };
  const items = (group) => Array.from(group.children).filter(c => c.tagName.toLowerCase() === 'g');
  const inside = (el, sel) => el.parentElement && el.parentElement.closest(sel) !== null;
  const containers = Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'));
  return containers.map((container, index) => {
    const svg = container.querySelector('svg.marks');
    const shown = container.getClientRects().length > 0 && container.getBoundingClientRect().width > 0;
    const out = {index, visible: shown, container: box(container.getBoundingClientRect()), outer: null,
                 renderer: svg ? 'svg' : (container.querySelector('canvas') ? 'canvas' : null),
                 svg: null, plot: null, plot_height: 0, plot_width: 0, cells: [], legends: [], axes: []};
    out.outer = out.container;
    if (!svg || !shown) return out;  // canvas, or not laid out (e.g. in a hidden tab): no geometry
    out.svg = box(svg.getBoundingClientRect());
    out.outer = union([out.container, out.svg]);  // a chart wider than its column shows here
    // plot areas: frame/scope groups that directly hold data marks (a collapsed one counts, at 0 px)
    const groups = svg.querySelectorAll('g.mark-group.role-frame, g.mark-group.role-scope');
    for (const group of groups) {
      if (inside(group, '.role-axis, .role-legend, .role-title')) continue;
      for (const item of items(group)) {
        const bg = item.querySelector(':scope > path.background');
        const content = Array.from(item.children).find(c => c.tagName.toLowerCase() === 'g');
        if (!bg || !content) continue;
        if (!content.querySelector(':scope > g.role-mark')) continue;
        out.cells.push({name: group.getAttribute('class'), ...box(bg.getBoundingClientRect())});
      }
    }
    out.plot = union(out.cells);
    out.plot_height = out.plot ? out.plot.height : 0;
    out.plot_width = out.plot ? out.plot.width : 0;
    for (const group of svg.querySelectorAll('g.mark-group.role-legend')) {
      for (const item of items(group)) {
        const title = item.querySelector('.role-legend-title text');
        out.legends.push({title: title ? title.textContent : null, ...box(item.getBoundingClientRect())});
      }
    }
    for (const group of svg.querySelectorAll('g.mark-group.role-axis')) {
      for (const item of items(group)) {
        const labels = [], hiddenLabels = [];
        for (const t of item.querySelectorAll('.role-axis-label text')) {
          const r = t.getBoundingClientRect();
          if (!t.textContent || hidden(t) || r.width === 0) hiddenLabels.push(t.textContent);
          else labels.push({text: t.textContent, corners: corners(t), ...box(r)});
        }
        const title = item.querySelector('.role-axis-title text');
        out.axes.push({aria: item.getAttribute('aria-label'), title: title ? title.textContent : null,
                       box: box(item.getBoundingClientRect()), labels, hidden_labels: hiddenLabels});
      }
    }
    return out;
  });
}
"""

WAIT_JS = r"""
(n) => {
  const charts = document.querySelectorAll('[data-testid="stVegaLiteChart"]');
  return charts.length >= n && Array.from(charts).every(
    c => c.querySelector('svg.marks g.role-frame') || c.querySelector('canvas.marks'));
}
"""


def wait_for_charts(page, count: int, timeout_ms: int = 60_000) -> None:
    """Wait until ``count`` Vega charts are on the page and every one has rendered."""
    page.wait_for_function(WAIT_JS, arg=count, timeout=timeout_ms)


def measure_charts(page) -> list[dict[str, Any]]:
    """For every Vega chart on the page (in document order): ``index``, ``visible``, ``renderer``
    (``svg`` | ``canvas``), ``container`` (Streamlit's chart element), ``svg``, ``outer`` (union of
    the two: a chart overflowing its column shows here), ``plot`` (union of the plot areas; None
    for a canvas chart or one not laid out, e.g. in a hidden tab), ``plot_height``,
    ``plot_width``, ``cells``, ``legends`` (boxes with their ``title``) and ``axes`` (per axis: ``aria``,
    ``title``, ``box``, visible ``labels`` with their boxes and ``text``, ``hidden_labels``).  Boxes
    are dicts ``x, y, width, height, right, bottom`` in CSS pixels relative to the viewport."""
    return page.evaluate(MEASURE_JS)


def _polygon(box: dict[str, Any]) -> list[tuple[float, float]]:
    if box.get("corners"):
        return [(float(x), float(y)) for x, y in box["corners"]]
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]


def _penetration(p: list[tuple[float, float]], q: list[tuple[float, float]]) -> float:
    """Separating-axis test for two convex polygons: the smallest overlap of their projections
    over every edge normal (<= 0: they are apart)."""
    depth = float("inf")
    for poly in (p, q):
        for k in range(len(poly)):
            (x1, y1), (x2, y2) = poly[k], poly[(k + 1) % len(poly)]
            nx, ny = y1 - y2, x2 - x1
            norm = (nx * nx + ny * ny) ** 0.5
            if norm == 0:
                continue
            nx, ny = nx / norm, ny / norm
            pa = [x * nx + y * ny for x, y in p]
            pb = [x * nx + y * ny for x, y in q]
            depth = min(depth, min(max(pa), max(pb)) - max(min(pa), min(pb)))
    return depth


def overlapping(boxes: Sequence[dict[str, Any]], tolerance: float = 0.5) -> list[tuple[int, int]]:
    """Index pairs of boxes that overlap by more than ``tolerance`` px.  A box with ``corners``
    (axis labels from :data:`MEASURE_JS`) is compared as its own, possibly rotated, rectangle;
    otherwise as the axis-aligned ``x, y, width, height``."""
    polygons = [_polygon(b) for b in boxes]
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if _penetration(polygons[i], polygons[j]) > tolerance]
