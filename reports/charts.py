"""Plotly chart specs drawn from a dashboard's tables (the tables stay the source of every number).

A spec is plotly's figure JSON (`data` + `layout`); the page puts it in a `data-chart` attribute and
`saas/static/js/charts.js` draws it — no inline script. Money is drawn in major units and ratios in percent;
the table beside each chart keeps the exact values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from flask_babel import gettext as _

from reports.tables import Chart, Column, Dashboard, Table
from saas.money import to_decimal

LAYOUT: dict[str, Any] = {
    "margin": {"l": 56, "r": 16, "t": 36, "b": 48},
    "height": 320,
    "legend": {"orientation": "h", "y": -0.2},
    "font": {"family": "system-ui, sans-serif", "size": 12},
}


def _number(value: Any, column: Column, currency: str) -> float | None:
    if value is None:
        return None
    if column.kind == "money":
        return float(to_decimal(int(value), currency))
    if column.kind == "ratio":
        return float(Decimal(value) * 100)
    return float(Decimal(str(value)))


def _column(table: Table, key: str) -> Column:
    return next(c for c in table.columns if c.key == key)


def _values(table: Table, key: str) -> list[Any]:
    column = _column(table, key)
    if column.kind in ("text", "date"):
        return [row.get(key) for row in table.rows]
    return [_number(row.get(key), column, table.currency) for row in table.rows]


def _axis_title(table: Table, key: str) -> str:
    column = _column(table, key)
    return f"{column.label} (%)" if column.kind == "ratio" else str(column.label)


def bar(table: Table, x: str, *ys: str, horizontal: bool = False) -> dict[str, Any]:
    """Return a (grouped) bar chart of the table's columns."""
    traces = []
    for y in ys:
        xs, values = _values(table, x), _values(table, y)
        if horizontal:
            traces.append(go.Bar(y=xs, x=values, name=str(_column(table, y).label), orientation="h"))
        else:
            traces.append(go.Bar(x=xs, y=values, name=str(_column(table, y).label)))
    layout = {**LAYOUT, "title": {"text": str(table.title)}, "barmode": "group"}
    axis = {"title": {"text": _axis_title(table, ys[0])}}
    layout["xaxis" if horizontal else "yaxis"] = axis
    if horizontal:
        layout["yaxis"] = {"automargin": True, "autorange": "reversed"}
    return _figure(traces, layout)


def line(table: Table, x: str, *ys: str) -> dict[str, Any]:
    """Return a line chart of the table's columns."""
    traces = [
        go.Scatter(
            x=_values(table, x), y=_values(table, y), name=str(_column(table, y).label), mode="lines+markers"
        )
        for y in ys
    ]
    layout = {
        **LAYOUT,
        "title": {"text": str(table.title)},
        "yaxis": {"title": {"text": _axis_title(table, ys[0])}},
    }
    return _figure(traces, layout)


def bars_and_line(table: Table, x: str, bars: str, line_of: str) -> dict[str, Any]:
    """Return bars of one column with a line of another on a second axis (orders and revenue)."""
    traces = [
        go.Bar(x=_values(table, x), y=_values(table, bars), name=str(_column(table, bars).label)),
        go.Scatter(
            x=_values(table, x),
            y=_values(table, line_of),
            name=str(_column(table, line_of).label),
            yaxis="y2",
            mode="lines+markers",
        ),
    ]
    layout = {
        **LAYOUT,
        "title": {"text": str(table.title)},
        "yaxis": {"title": {"text": _axis_title(table, bars)}},
        "yaxis2": {"title": {"text": _axis_title(table, line_of)}, "overlaying": "y", "side": "right"},
    }
    return _figure(traces, layout)


def lines_by(table: Table, x: str, series: str, y: str) -> dict[str, Any]:
    """Return one line per value of `series` (one per channel)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in table.rows:
        groups.setdefault(str(row[series]), []).append(row)
    column = _column(table, y)
    traces = [
        go.Scatter(
            x=[r[x] for r in rows],
            y=[_number(r[y], column, table.currency) for r in rows],
            name=name,
            mode="lines+markers",
        )
        for name, rows in groups.items()
    ]
    layout = {
        **LAYOUT,
        "title": {"text": str(table.title)},
        "yaxis": {"title": {"text": _axis_title(table, y)}},
    }
    return _figure(traces, layout)


def _figure(traces: list[Any], layout: dict[str, Any]) -> dict[str, Any]:
    figure = go.Figure(data=traces, layout=layout)
    spec: dict[str, Any] = json.loads(pio.to_json(figure, validate=False, engine="json"))
    spec.setdefault("layout", {}).pop("template", None)  # the default template is large; plotly.js has it
    return spec


def _label(table: Table, keys: tuple[str, ...]) -> Table:
    """Return a copy of the table whose first key joins several text columns (plan + cohort)."""
    rows = [{**row, "_label": " · ".join(str(row[k]) for k in keys)} for row in table.rows]
    return Table(
        table.key, table.title, [Column("_label", "", "text"), *table.columns], rows, currency=table.currency
    )


CHARTS: dict[str, dict[str, Callable[[Table], dict[str, Any]]]] = {
    "redemption": {
        "over_time": lambda t: line(t, "day", "rate"),
        "by_bundle": lambda t: bar(t, "bundle", "rate", horizontal=True),
        "by_right": lambda t: bar(t, "right", "rate", horizontal=True),
        "by_channel": lambda t: bar(t, "channel", "rate", horizontal=True),
        "cohorts": lambda t: bar(t, "week", "rate"),
        "time_to_redeem": lambda t: bar(t, "bucket", "grants"),
    },
    "channel_roi": {
        "per_channel": lambda t: bar(t, "channel", "revenue", "gross_profit", "spend"),
        "trend": lambda t: lines_by(t, "day", "channel", "gross_profit"),
    },
    "renewals": {
        "renewal_rates": lambda t: bar(_label(t, ("plan", "cohort")), "_label", "rate"),
        "timing": lambda t: bar(t, "days", "renewals"),
        "day_of_month": lambda t: bar(t, "day_of_month", "renewals"),
        "cancellation_reasons": lambda t: bar(t, "reason", "cancellations", horizontal=True),
    },
    "sales": {
        "over_time": lambda t: bars_and_line(t, "day", "orders", "revenue"),
        "by_bundle": lambda t: bar(t, "bundle", "revenue", horizontal=True),
        "stock": lambda t: bar(t, "right", "available", "delivered_30d", horizontal=True),
    },
}


def attach_charts(dashboard: Dashboard) -> Dashboard:
    """Draw a chart for each non-empty table that has one."""
    drawers = CHARTS.get(dashboard.name, {})
    dashboard.charts = [
        Chart(table.key, drawers[table.key](table))
        for table in dashboard.tables
        if table.key in drawers and not table.is_empty
    ]
    return dashboard


def chart_json(chart: Chart) -> str:
    """Return the spec as the page's `data-chart` attribute holds it."""
    return json.dumps(chart.spec, ensure_ascii=False, separators=(",", ":"))


def no_data_label() -> str:
    """Return what a chart area says when there is nothing to draw."""
    return _("No data for this period.")
