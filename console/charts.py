"""Small inline SVG charts rendered on the server: no JavaScript and no CDN (consoles often run air-gapped).

Every label passes through `html.escape`; the templates insert the result with `|safe`.
"""

from __future__ import annotations

import datetime as dt
from html import escape

# Colours live in static/console.css (class c-<tier> / c-<capability>), shared with the legends.


def score_over_time(points: list[dict], width: int = 640, height: int = 180) -> str:
    """points: {score_date, score, tier}, oldest first. Score on a 0..1 axis, one dot per day coloured by tier."""
    if not points:
        return ""
    left, right, top, bottom = 44, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(points)
    x = (lambda i: left + plot_w / 2) if n == 1 else (lambda i: left + plot_w * i / (n - 1))
    y = lambda score: top + plot_h * (1 - max(0.0, min(1.0, score or 0.0)))  # noqa: E731 - a one-line scale, read like a formula
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="score and tier per day">']
    for tick in (0.0, 0.5, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#ddd"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{tick:.1f}</text>'
        )
    path = " ".join(f"{x(i):.1f},{y(p['score']):.1f}" for i, p in enumerate(points))
    parts.append(f'<polyline points="{path}" fill="none" stroke="#555" stroke-width="1.5"/>')
    for i, p in enumerate(points):
        label = escape(f"{p['score_date']}: score {p['score']:.3f}, tier {p['tier']}")
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(p["score"]):.1f}" r="4.5" class="c-{escape(str(p["tier"]))}">'
            f'<title>{label}</title></circle>'
        )
    step = max(1, -(-n // 6))
    for i in range(0, n, step):
        anchor = "end" if i == n - 1 and n > 1 else "start" if i == 0 and n > 1 else "middle"
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="{anchor}" font-size="11">'
            f'{escape(_short(points[i]["score_date"]))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def capability_bars(points: list[dict], width: int = 640, height: int = 180) -> str:
    """points: {day, requests, capabilities: {name: count}}, oldest first; one stacked bar per day."""
    if not points:
        return ""
    left, right, top, bottom = 52, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(sum(p["capabilities"].values()) for p in points) or 1
    slot = plot_w / len(points)
    bar = max(2.0, slot * 0.7)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="requests per day by capability">',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="11">{peak:,}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>',
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#bbb"/>',
    ]
    for i, p in enumerate(points):
        base = top + plot_h
        for name, count in p["capabilities"].items():
            if not count:
                continue
            h = plot_h * count / peak
            base -= h
            label = escape(f"{p['day']}: {count:,} {name} requests")
            parts.append(
                f'<rect x="{left + i * slot + (slot - bar) / 2:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" class="c-{escape(name)}"><title>{label}</title></rect>'
            )
    step = max(1, len(points) // 7)
    for i in range(0, len(points), step):
        parts.append(
            f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - 8}" text-anchor="middle" '
            f'font-size="11">{escape(_short(points[i]["day"]))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(day: dt.date) -> str:
    return day.strftime("%b %d")
