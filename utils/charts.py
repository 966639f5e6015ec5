"""Plotly figure builders shared by the web pages and the notebooks.

Framework-free: each function takes plain pandas/numpy data and returns a `go.Figure`, so a
notebook draws exactly what the site shows. The figures are small on the wire on purpose:
times go out as short naive-UTC strings, numbers as plotly's base64 typed arrays, and the
layout uses no template (plotly's default template alone is ~8 KB of JSON per figure).
Callers are expected to aggregate long ranges first (see MAX_POINTS); nothing here thins data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.utils import PlotlyJSONEncoder

# Most points one trace should carry: a few thousand keeps every chart response far below
# 300 KB and plotly.js fast on a phone. Long ranges are aggregated to a coarser interval first.
MAX_POINTS = 2000

COLORS = {
    "actual": "#1d2430",
    "predicted": "#d9480f",
    "train": "#1971c2",
    "test": "#d9480f",
    "forecast": "#7048e8",
    "volume": "#adb5bd",
    "up": "#2b8a3e",
    "down": "#c92a2a",
    "buy_and_hold": "#868e96",
    "strategy": "#1971c2",
}
_FONT = {"family": "system-ui, sans-serif", "size": 12, "color": "#1d2430"}
_AXIS = {"gridcolor": "#e9ecef", "zeroline": False, "automargin": True}


def times(index: Iterable) -> np.ndarray:
    """Naive UTC times to the minute ('2020-01-01T13:00'): what plotly.js reads, and short.

    A numpy string array rather than a list: plotly validates a list element by element,
    which for a few thousand times costs more than the rest of a request.
    """
    values = pd.DatetimeIndex(index)
    if values.tz is not None:
        values = values.tz_convert("UTC").tz_localize(None)
    return np.datetime_as_string(values.to_numpy(dtype="datetime64[m]"), unit="m")


def _layout(title: str, **extra) -> dict:
    return {
        "template": "none",
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        "font": _FONT,
        "margin": {"l": 56, "r": 16, "t": 40, "b": 40},
        "legend": {"orientation": "h", "y": -0.15, "x": 0},
        "hovermode": "x unified",
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        **extra,
    }


def _values(series: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(series, dtype="float64")


def price_volume_figure(bars: pd.DataFrame, title: str, style: str = "line") -> go.Figure:
    """Price (a close line or candlesticks) above the traded volume, on one shared time axis.

    `bars` is get_bars' frame: indexed by opening time with open/high/low/close/volume.
    """
    x = times(bars.index)
    if style == "candles":
        price = go.Candlestick(
            x=x,
            open=_values(bars["open"]),
            high=_values(bars["high"]),
            low=_values(bars["low"]),
            close=_values(bars["close"]),
            name="Price",
            increasing={"line": {"color": COLORS["up"], "width": 1}},
            decreasing={"line": {"color": COLORS["down"], "width": 1}},
            xaxis="x",
            yaxis="y2",
        )
    else:
        price = go.Scatter(
            x=x,
            y=_values(bars["close"]),
            name="Close",
            mode="lines",
            line={"color": COLORS["actual"], "width": 1.5},
            xaxis="x",
            yaxis="y2",
        )
    volume = go.Bar(
        x=x,
        y=_values(bars["volume"]),
        name="Volume",
        marker={"color": COLORS["volume"], "line": {"width": 0}},
        xaxis="x",
        yaxis="y",
    )
    layout = _layout(
        title,
        showlegend=False,
        xaxis={**_AXIS, "rangeslider": {"visible": False}},
        yaxis={**_AXIS, "domain": [0, 0.24], "title": {"text": "Volume"}},
        yaxis2={**_AXIS, "domain": [0.3, 1], "title": {"text": "Price"}},
        bargap=0,
    )
    return go.Figure(data=[price, volume], layout=layout)


def _actual_close(actual: pd.Series, width: float) -> go.Scatter:
    """The actual-close line every prediction chart is read against, drawn the same way."""
    return go.Scatter(
        x=times(actual.index),
        y=_values(actual),
        name="Actual close",
        mode="lines",
        line={"color": COLORS["actual"], "width": width},
    )


# Names of the forecast chart's prediction traces: what each kind of prediction is, so a fit is
# never read as a forecast (the browser tests and readers of the legend rely on them).
FITTED_TRACE = "Fitted (in-sample, 1 bar ahead)"
TEST_TRACE = "Test forecast (1 bar ahead)"
LIVE_TRACE = "Live forecast (made before the bar)"
FUTURE_TRACE = "Forecast beyond the last bar"


def forecast_figure(
    actual: pd.Series,
    fitted: pd.Series,
    future: pd.Series,
    title: str,
    *,
    test: pd.Series | None = None,
    live: pd.Series | None = None,
) -> go.Figure:
    """Actual closes, the one-step predictions by kind, and the forecast beyond the last bar.

    `fitted` predicted bars that were stored when it was made (fits, drawn faint and labelled
    in-sample); `test` is an evaluation session's out-of-sample part; `live` a production
    session's forecasts made before their bar existed, its track record. A kind passed as
    None has no trace; an empty series keeps its (empty) trace so the legend stays the same.
    """
    data = [
        _actual_close(actual, width=1.5),
        go.Scatter(
            x=times(fitted.index),
            y=_values(fitted),
            name=FITTED_TRACE,
            mode="lines",
            opacity=0.6,
            line={"color": COLORS["train"], "width": 1.2},
        ),
    ]
    if test is not None:
        data.append(
            go.Scatter(
                x=times(test.index),
                y=_values(test),
                name=TEST_TRACE,
                mode="lines",
                line={"color": COLORS["test"], "width": 1.5},
            )
        )
    if live is not None:
        data.append(
            go.Scatter(
                x=times(live.index),
                y=_values(live),
                name=LIVE_TRACE,
                mode="lines+markers",
                line={"color": COLORS["predicted"], "width": 1.5},
                marker={"size": 5},
            )
        )
    data.append(
        go.Scatter(
            x=times(future.index),
            y=_values(future),
            name=FUTURE_TRACE,
            mode="lines+markers",
            line={"color": COLORS["forecast"], "width": 2, "dash": "dot"},
            marker={"size": 6},
        )
    )
    layout = _layout(title, xaxis={**_AXIS}, yaxis={**_AXIS})
    return go.Figure(data=data, layout=layout)


def train_test_figure(
    actual: pd.Series, predicted: pd.Series, split: pd.Timestamp | None, title: str
) -> go.Figure:
    """Actual against predicted, the predictions coloured by the part (train or test) they fall in.

    `split` is the first test bar's time; a dashed line marks it so the out-of-sample part
    is never mistaken for the in-sample one.
    """
    index = pd.DatetimeIndex(predicted.index)
    in_test = (
        index >= pd.Timestamp(split) if split is not None else np.zeros(len(index), dtype=bool)
    )
    data = [
        _actual_close(actual, width=1),
        go.Scatter(
            x=times(index[~in_test]),
            y=_values(predicted)[~in_test],
            name="Fitted, training part (in-sample)",
            mode="lines",
            opacity=0.75,
            line={"color": COLORS["train"], "width": 1.5},
        ),
        go.Scatter(
            x=times(index[in_test]),
            y=_values(predicted)[in_test],
            name="Predicted, test part",
            mode="lines",
            opacity=0.75,
            line={"color": COLORS["test"], "width": 1.5},
        ),
    ]
    shapes, annotations = [], []
    if split is not None:
        (at,) = times([split])
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": at,
                "x1": at,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#868e96", "dash": "dash", "width": 1},
            }
        )
        annotations.append(
            {
                "x": at,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": "test starts",
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"size": 11, "color": "#5b6573"},
            }
        )
    layout = _layout(
        title,
        xaxis={**_AXIS},
        yaxis={**_AXIS},
        shapes=shapes,
        annotations=annotations,
    )
    return go.Figure(data=data, layout=layout)


def loss_figure(loss_history: list[Mapping], title: str = "Loss per epoch") -> go.Figure:
    """One line per recorded metric (loss, val_loss...), epochs numbered across fits.

    `loss_history` is TrainingSession.loss_history: one entry per fit (the first training and
    each update), each holding lists of per-epoch values keyed by metric name.
    """
    series: dict[str, tuple[list[int], list[float]]] = {}
    epoch = 0
    boundaries = []
    for fit in loss_history:
        metrics = {k: v for k, v in fit.items() if isinstance(v, list)}
        length = max((len(v) for v in metrics.values()), default=0)
        for name, values in metrics.items():
            xs, ys = series.setdefault(name, ([], []))
            xs.extend(range(epoch + 1, epoch + len(values) + 1))
            ys.extend(float(v) for v in values)
        epoch += length
        boundaries.append(epoch)
    data = [
        go.Scatter(x=xs, y=ys, name=name, mode="lines+markers", marker={"size": 5})
        for name, (xs, ys) in series.items()
    ]
    shapes = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": at + 0.5,
            "x1": at + 0.5,
            "y0": 0,
            "y1": 1,
            "line": {"color": "#ced4da", "dash": "dot", "width": 1},
        }
        for at in boundaries[:-1]
    ]
    layout = _layout(
        title,
        hovermode="closest",
        xaxis={**_AXIS, "title": {"text": "epoch"}, "dtick": 1 if epoch <= 20 else None},
        yaxis={**_AXIS, "title": {"text": "loss (scaled)"}},
        shapes=shapes,
    )
    return go.Figure(data=data, layout=layout)


def equity_figure(curves: Mapping[str, pd.Series], title: str = "Equity") -> go.Figure:
    """Equity curves (growth of 1) side by side, e.g. the strategy against buy-and-hold.

    `curves` maps a legend name to a series indexed by time; names containing 'hold' are
    drawn grey, so the benchmark reads as the benchmark.
    """
    data = []
    for name, curve in curves.items():
        benchmark = "hold" in name.lower()
        data.append(
            go.Scatter(
                x=times(curve.index),
                y=_values(curve),
                name=name,
                mode="lines",
                line={
                    "color": COLORS["buy_and_hold" if benchmark else "strategy"],
                    "width": 1.5,
                    "dash": "dot" if "train" in name.lower() else "solid",
                },
            )
        )
    layout = _layout(
        title,
        xaxis={**_AXIS},
        yaxis={**_AXIS, "title": {"text": "growth of 1"}},
    )
    return go.Figure(data=data, layout=layout)


def figure_json(figures: Mapping[str, go.Figure]) -> str:
    """Several figures as one JSON object {name: {data, layout}}, numbers as typed arrays."""
    return json.dumps(
        {name: figure.to_plotly_json() for name, figure in figures.items()},
        cls=PlotlyJSONEncoder,
        separators=(",", ":"),
    )


def point_count(figure: go.Figure) -> int:
    """The largest number of points any one trace of the figure carries."""
    counts = [len(trace.x) if trace.x is not None else 0 for trace in figure.data]
    return max(counts, default=0)
