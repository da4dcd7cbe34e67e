"""Plotly figures used by the panel's pages. Titles and labels come translated from the page."""

from __future__ import annotations

import plotly.graph_objects as go

_LAYOUT = {"height": 320, "margin": {"t": 40, "b": 30}}


def bars(x: list, y: list, title: str, y_title: str) -> go.Figure:
    figure = go.Figure(go.Bar(x=x, y=y))
    figure.update_layout(title=title, yaxis_title=y_title, **_LAYOUT)
    return figure


def stacked_bars(x: list, series: dict[str, list], title: str, y_title: str) -> go.Figure:
    """One bar per x value, stacked from `series` (name → values, in the order of x)."""
    figure = go.Figure([go.Bar(x=x, y=values, name=name) for name, values in series.items()])
    figure.update_layout(
        title=title, yaxis_title=y_title, barmode="stack", legend={"orientation": "h"}, **_LAYOUT
    )
    return figure


def lines(x: list, series: dict[str, list], title: str, y_title: str) -> go.Figure:
    figure = go.Figure(
        [
            go.Scatter(x=x, y=values, mode="lines+markers", name=name)
            for name, values in series.items()
        ]
    )
    figure.update_layout(title=title, yaxis_title=y_title, **_LAYOUT)
    return figure


def grouped_bars(x: list, series: dict[str, list], title: str, y_title: str) -> go.Figure:
    """Bars side by side per x value, one per series (name → values, in the order of x)."""
    figure = go.Figure([go.Bar(x=x, y=values, name=name) for name, values in series.items()])
    figure.update_layout(
        title=title, yaxis_title=y_title, barmode="group", legend={"orientation": "h"}, **_LAYOUT
    )
    return figure
