"""Drawings the console renders on the server as inline SVG: a case's place among its
grids (from the grids' centroids, like the board: no map tiles) and line charts of
rates and durations over time. No script, nothing loaded from outside."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Cell:
    code: str
    name: str
    lon: float
    lat: float


def case_map(cells: Sequence[Cell], *, here: str | None, lon: float | None,
             lat: float | None) -> str:
    """The grids around a case as squares at their centroids, the case's grid
    highlighted and its reported position as a dot."""
    points: list[tuple[Cell | None, float, float]] = [(c, c.lon, c.lat) for c in cells]
    if lon is not None and lat is not None:
        points.append((None, lon, lat))
    if not points:
        return '<p class="muted">无位置 · no position known</p>'
    lat0 = sum(p[2] for p in points) / len(points)
    k = math.cos(math.radians(lat0))
    xy = [(c, x * k * 1e4, -y * 1e4) for c, x, y in points]
    step = min((max(abs(a[1] - b[1]), abs(a[2] - b[2]))
                for i, a in enumerate(xy) for b in xy[i + 1:]
                if a[0] is not None and b[0] is not None
                and max(abs(a[1] - b[1]), abs(a[2] - b[2])) > 0), default=10.0)
    half = step * 0.47
    min_x = min(p[1] for p in xy) - step * 0.6
    min_y = min(p[2] for p in xy) - step * 0.6
    width = max(p[1] for p in xy) + step * 0.6 - min_x
    height = max(p[2] for p in xy) + step * 0.6 - min_y
    parts = [f'<svg class="map" viewBox="0 0 {width:.1f} {height:.1f}" role="img" '
             f'aria-label="案件位置 case position">']
    for cell, x, y in xy:
        if cell is None:
            continue
        cls = ' class="here"' if cell.code == here else ""
        parts.append(f'<rect{cls} data-grid="{escape(cell.code)}" x="{x - min_x - half:.1f}" '
                     f'y="{y - min_y - half:.1f}" width="{half * 2:.1f}" '
                     f'height="{half * 2:.1f}" rx="{step * 0.08:.1f}">'
                     f'<title>{escape(cell.name)} {escape(cell.code)}</title></rect>')
    if lon is not None and lat is not None:
        x, y = lon * k * 1e4 - min_x, -lat * 1e4 - min_y
        parts.append(f'<circle data-case-position cx="{x:.1f}" cy="{y:.1f}" r="{step * 0.15:.1f}">'
                     f'<title>上报位置 reported position {lat:.5f}, {lon:.5f}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: Sequence[float | None]  # one per label; None = no data that day


def line_chart(labels: Sequence[str], series: Sequence[Series], *, percent: bool,
               width: int = 640, height: int = 220) -> str:
    """A line chart: ``labels`` along x, each series a polyline (gaps where None)."""
    left, right, top, bottom = 44, 10, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    known = [v for s in series for v in s.values if v is not None]
    top_value = 1.0 if percent else max(known, default=1.0) * 1.1 or 1.0
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img">']
    for j in range(5):
        tick = top_value * j / 4
        text = f"{tick * 100:.0f}%" if percent else f"{tick:.3g}"
        parts.append(f'<line class="gridline" x1="{left}" x2="{width - right}" '
                     f'y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{text}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>')
    every = max(1, math.ceil(n / 10))
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle">'
                         f'{escape(label)}</text>')
    for s in series:
        run: list[str] = []
        for i, value in enumerate(s.values):
            if value is None:
                if len(run) > 1:
                    parts.append(f'<polyline stroke="{s.color}" points="{" ".join(run)}"/>')
                run = []
                continue
            run.append(f"{x(i):.1f},{y(value):.1f}")
            shown = f"{value * 100:.1f}%" if percent else f"{value:.3g}"
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="2.5" '
                         f'fill="{s.color}"><title>{escape(s.name)} {escape(labels[i])}: '
                         f'{shown}</title></circle>')
        if len(run) > 1:
            parts.append(f'<polyline stroke="{s.color}" points="{" ".join(run)}"/>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["Cell", "Series", "case_map", "line_chart"]
