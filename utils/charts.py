"""Plotly figure builders shared by the web pages and the notebooks.

Framework-free: each function takes plain pandas/numpy data and returns a `Figure`, so a
notebook draws exactly what the site shows (`figure.show()`, or `figure.to_plotly()` for a
validated `go.Figure`). The figures are small on the wire on purpose: times go out as short
naive-UTC strings, numbers as plotly's base64 typed arrays, and the layout uses no template
(plotly's default template alone is ~8 KB of JSON per figure).
Callers are expected to aggregate long ranges first (see MAX_POINTS); nothing here thins data.

Why plain dicts rather than plotly's validated objects (go.Scatter, go.Figure): building and
serialising through them cost several times the rest of a chart response, for the same JSON
(bench/figures_benchmark.py measures both, and checks the JSON is the same). The dicts below
hold exactly what plotly's objects would put out: typed arrays in plotly's own
{"dtype", "bdata"} form, the "none" template as plotly expands it, "type" on every trace.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence

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


_TYPED = {"float64": "f8", "float32": "f4"}


class Trace(dict):
    """One trace as plotly.js reads it; attributes read like plotly's (trace.name, trace.x)."""

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)


class Figure(dict):
    """{"data": [traces], "layout": {...}}: plotly.js's JSON, built without validation.

    Reads like a go.Figure where callers need it (`.data`, `.layout`, `.to_plotly_json()`,
    `.show()`), and serialises with plain `json.dumps`.
    """

    @property
    def data(self) -> list[Trace]:
        return self["data"]

    @property
    def layout(self) -> dict:
        return self["layout"]

    def to_plotly_json(self) -> dict:
        return self

    def to_plotly(self) -> go.Figure:
        """The validated plotly object (notebooks, image export)."""
        return go.Figure(self)

    def show(self, *args, **kwargs) -> None:
        self.to_plotly().show(*args, **kwargs)


def _trace(kind: str, **properties) -> Trace:
    """A trace with numpy arrays as plotly's typed arrays (string arrays as lists)."""
    return Trace({**{k: _encode(v) for k, v in properties.items()}, "type": kind})


def _encode(value):
    if not isinstance(value, np.ndarray):
        return value
    code = _TYPED.get(str(value.dtype))
    if code is None:  # strings (times), and anything plotly would not send as typed
        return value.tolist()
    if value.size == 0:
        return []
    data = base64.b64encode(np.ascontiguousarray(value).tobytes()).decode("ascii")
    return {"dtype": code, "bdata": data}


def _layout(title: str, **extra) -> dict:
    return {
        # plotly's "none" template as go.Figure expands it: what browsers always received.
        "template": {"data": {"scatter": [{"type": "scatter"}]}},
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        "font": _FONT,
        "margin": {"l": 56, "r": 16, "t": 40, "b": 40},
        "legend": {"orientation": "h", "y": -0.15, "x": 0},
        "hovermode": "x unified",
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        # Empty shapes or annotations are left out, as plotly leaves them out.
        **{
            name: value
            for name, value in extra.items()
            if not (isinstance(value, list) and not value)
        },
    }


def _values(series: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(series, dtype="float64")


def price_volume_figure(bars: pd.DataFrame, title: str, style: str = "line") -> Figure:
    """Price (a close line or candlesticks) above the traded volume, on one shared time axis.

    `bars` is get_bars' frame: indexed by opening time with open/high/low/close/volume.
    """
    x = times(bars.index)
    if style == "candles":
        price = _trace(
            "candlestick",
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
        price = _trace(
            "scatter",
            x=x,
            y=_values(bars["close"]),
            name="Close",
            mode="lines",
            line={"color": COLORS["actual"], "width": 1.5},
            xaxis="x",
            yaxis="y2",
        )
    volume = _trace(
        "bar",
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
    return Figure(data=[price, volume], layout=layout)


def _actual_close(actual: pd.Series, width: float) -> Trace:
    """The actual-close line every prediction chart is read against, drawn the same way."""
    return _trace(
        "scatter",
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
) -> Figure:
    """Actual closes, the one-step predictions by kind, and the forecast beyond the last bar.

    `fitted` predicted bars that were stored when it was made (fits, drawn faint and labelled
    in-sample); `test` is an evaluation session's out-of-sample part; `live` a production
    session's forecasts made before their bar existed, its track record. A kind passed as
    None has no trace; an empty series keeps its (empty) trace so the legend stays the same.
    """
    data = [
        _actual_close(actual, width=1.5),
        _trace(
            "scatter",
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
            _trace(
                "scatter",
                x=times(test.index),
                y=_values(test),
                name=TEST_TRACE,
                mode="lines",
                line={"color": COLORS["test"], "width": 1.5},
            )
        )
    if live is not None:
        data.append(
            _trace(
                "scatter",
                x=times(live.index),
                y=_values(live),
                name=LIVE_TRACE,
                mode="lines+markers",
                line={"color": COLORS["predicted"], "width": 1.5},
                marker={"size": 5},
            )
        )
    data.append(
        _trace(
            "scatter",
            x=times(future.index),
            y=_values(future),
            name=FUTURE_TRACE,
            mode="lines+markers",
            line={"color": COLORS["forecast"], "width": 2, "dash": "dot"},
            marker={"size": 6},
        )
    )
    layout = _layout(title, xaxis={**_AXIS}, yaxis={**_AXIS})
    return Figure(data=data, layout=layout)


def train_test_figure(
    actual: pd.Series, predicted: pd.Series, split: pd.Timestamp | None, title: str
) -> Figure:
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
        _trace(
            "scatter",
            x=times(index[~in_test]),
            y=_values(predicted)[~in_test],
            name="Fitted, training part (in-sample)",
            mode="lines",
            opacity=0.75,
            line={"color": COLORS["train"], "width": 1.5},
        ),
        _trace(
            "scatter",
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
    return Figure(data=data, layout=layout)


def loss_figure(loss_history: Sequence[Mapping], title: str = "Loss per epoch") -> Figure:
    """One line per recorded metric (loss, val_loss...), epochs numbered across fits.

    `loss_history` is TrainingSession.loss_history: one entry per fit (the first training and
    each update), each holding lists of per-epoch values keyed by metric name.
    """
    series: dict[str, tuple[list[int], list[float | None]]] = {}
    epoch = 0
    boundaries = []
    for fit in loss_history:
        metrics = {k: v for k, v in fit.items() if isinstance(v, list)}
        length = max((len(v) for v in metrics.values()), default=0)
        for name, values in metrics.items():
            xs, ys = series.setdefault(name, ([], []))
            xs.extend(range(epoch + 1, epoch + len(values) + 1))
            ys.extend(_finite(v) for v in values)
        epoch += length
        boundaries.append(epoch)
    data = [
        _trace("scatter", x=xs, y=ys, name=name, mode="lines+markers", marker={"size": 5})
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
        xaxis={**_AXIS, "title": {"text": "epoch"}, **({"dtick": 1} if epoch <= 20 else {})},
        yaxis={**_AXIS, "title": {"text": "loss (scaled)"}},
        shapes=shapes,
    )
    return Figure(data=data, layout=layout)


def _finite(value) -> float | None:
    """A loss as JSON can carry it: a diverged fit's NaN or inf is a gap (null), as plotly
    would write it."""
    number = float(value)
    return number if math.isfinite(number) else None


def equity_figure(curves: Mapping[str, pd.Series], title: str = "Equity") -> Figure:
    """Equity curves (growth of 1) side by side, e.g. the strategy against buy-and-hold.

    `curves` maps a legend name to a series indexed by time; names containing 'hold' are
    drawn grey, so the benchmark reads as the benchmark.
    """
    data = []
    for name, curve in curves.items():
        benchmark = "hold" in name.lower()
        data.append(
            _trace(
                "scatter",
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
    return Figure(data=data, layout=layout)


# One colour per compared pick (A to D), distinct from the actual close's near-black.
PICK_COLORS = ("#1971c2", "#d9480f", "#2b8a3e", "#ae3ec9")


def compare_forecast_figure(
    actual: Mapping[str, pd.Series], forecasts: Mapping[str, pd.Series], title: str
) -> go.Figure:
    """Several picks' out-of-sample forecasts over one actual close (one per symbol).

    `actual` maps a symbol to its closes, `forecasts` a pick's name to its one-step
    forecasts; pick i is drawn in PICK_COLORS[i] on every compare chart.
    """
    data = [
        go.Scatter(
            x=times(close.index),
            y=_values(close),
            name=f"Actual close {symbol}" if len(actual) > 1 else "Actual close",
            mode="lines",
            line={"color": COLORS["actual"], "width": 1.5, "dash": "solid" if i == 0 else "dot"},
        )
        for i, (symbol, close) in enumerate(actual.items())
    ]
    for i, (name, series) in enumerate(forecasts.items()):
        data.append(
            go.Scatter(
                x=times(series.index),
                y=_values(series),
                name=name,
                mode="lines",
                opacity=0.85,
                line={"color": PICK_COLORS[i % len(PICK_COLORS)], "width": 1.3},
            )
        )
    return go.Figure(data=data, layout=_layout(title, xaxis={**_AXIS}, yaxis={**_AXIS}))


def compare_equity_figure(
    curves: Mapping[str, Mapping[str, pd.Series]], title: str = "Equity (growth of 1)"
) -> go.Figure:
    """Each pick's strategy curve in its colour, its buy-and-hold dotted in the same colour.

    `curves` maps a pick's name to {"Strategy": series, "Buy and hold": series}.
    """
    data = []
    for i, (name, pair) in enumerate(curves.items()):
        color = PICK_COLORS[i % len(PICK_COLORS)]
        for label, curve in pair.items():
            hold = "hold" in label.lower()
            data.append(
                go.Scatter(
                    x=times(curve.index),
                    y=_values(curve),
                    name=f"{name}: {label}",
                    legendgroup=name,
                    mode="lines",
                    opacity=0.6 if hold else 1.0,
                    line={
                        "color": color,
                        "width": 1 if hold else 1.6,
                        "dash": "dot" if hold else "solid",
                    },
                )
            )
    layout = _layout(title, xaxis={**_AXIS}, yaxis={**_AXIS, "title": {"text": "growth of 1"}})
    return go.Figure(data=data, layout=layout)


def figure_json(figures: Mapping[str, Figure | go.Figure]) -> str:
    """Several figures as one JSON object {name: {data, layout}}, numbers as typed arrays.

    Plain `Figure`s go through `json.dumps` as they are; plotly objects through plotly's
    encoder (which validates and re-encodes, several times slower).
    """
    parts = []
    for name, figure in figures.items():
        if isinstance(figure, Figure):
            text = json.dumps(figure, separators=(",", ":"))
        else:
            text = json.dumps(figure.to_plotly_json(), cls=PlotlyJSONEncoder, separators=(",", ":"))
        parts.append(f"{json.dumps(name)}:{text}")
    return "{" + ",".join(parts) + "}"


def point_count(figure: Figure | go.Figure) -> int:
    """The largest number of points any one trace of the figure carries."""
    counts = [len(trace.x) if trace.x is not None else 0 for trace in figure.data]
    return max(counts, default=0)
