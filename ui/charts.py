"""Plotly figures used by the panel's pages."""

from __future__ import annotations

import plotly.graph_objects as go


def bars(x: list, y: list, title: str, y_title: str) -> go.Figure:
    figure = go.Figure(go.Bar(x=x, y=y))
    figure.update_layout(title=title, yaxis_title=y_title, height=320, margin={"t": 40, "b": 30})
    return figure


def lines(x: list, series: dict[str, list], title: str, y_title: str) -> go.Figure:
    figure = go.Figure(
        [
            go.Scatter(x=x, y=values, mode="lines+markers", name=name)
            for name, values in series.items()
        ]
    )
    figure.update_layout(title=title, yaxis_title=y_title, height=320, margin={"t": 40, "b": 30})
    return figure
