"""Selection forms of the pages. All are GET forms: choosing what to look at changes nothing.

Dates are whole days in UTC, the end day included: that is what a reader means by
"from the 1st to the 7th", and it maps onto the selectors' [start, end) ranges exactly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms

from predictor.selectors import web as selectors_web

STYLE_CHOICES = (("line", "Line"), ("candles", "Candlesticks"))


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class DateRangeForm(forms.Form):
    """A start and an end day (inclusive), the start not after the end."""

    start = forms.DateField(
        label="From", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    end = forms.DateField(
        label="To", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if cleaned is None:
            return None
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start > end:
            raise forms.ValidationError(
                f"The start day {start:%Y-%m-%d} is after the end day {end:%Y-%m-%d}.",
                code="range",
            )
        return cleaned

    def range(self) -> tuple[datetime, datetime]:
        """[start, end) as aware UTC datetimes; the end day is included.

        The last day a datetime can hold (9999-12-31) has no next day: such an end is read as
        "to the end of time", one day short, rather than overflowing into a server error.
        """
        end = min(self.cleaned_data["end"], date.max - timedelta(days=1))
        return (day_start(self.cleaned_data["start"]), day_start(end) + timedelta(days=1))


class DownloadRangeForm(DateRangeForm):
    """A download's days: either may be left out (from the first, or to the last, bar)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("start", "end"):
            self.fields[name].required = False

    # Open-ended where a day is left empty: a wider return type than DateRangeForm's.
    def range(self) -> tuple[datetime | None, datetime | None]:  # type: ignore[override]
        start, end = self.cleaned_data.get("start"), self.cleaned_data.get("end")
        end = min(end, date.max - timedelta(days=1)) if end else None
        return (
            day_start(start) if start else None,
            day_start(end) + timedelta(days=1) if end else None,
        )


class PriceForm(DateRangeForm):
    """Index page: which symbol, over which days, drawn how."""

    symbol = forms.ChoiceField(label="Symbol", widget=forms.Select(attrs={"data-resets": "1"}))
    style = forms.ChoiceField(label="Chart", choices=STYLE_CHOICES, initial="line")
    field_order = ("symbol", "start", "end", "style")

    def __init__(self, *args, symbols: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["symbol"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(s, s) for s in symbols]


class SessionChoiceForm(forms.Form):
    """A session picked from a list; the view has already resolved the id (or answered 404)."""

    session = forms.ChoiceField(label="Session", widget=forms.Select(attrs={"data-resets": "1"}))

    def __init__(self, *args, sessions: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["session"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(str(s.id), session_label(s)) for s in sessions]


class ForecastForm(SessionChoiceForm, DateRangeForm):
    """Forecast page: a production session and the days to draw."""

    field_order = ("session", "start", "end")


def session_label(session) -> str:
    """'BTCUSD H · LSTM · W 48 · U 32 · log_return · 2020-12-01 10:00 · 3f2a91c0': symbol,
    interval, model kind ('production' after it for a production session), the flags that
    differ from train_model's defaults and that the kind reads (with -S/-E when given), the
    creation time, then the id, secondary. A backtest's fold session adds 'fold 2, seed 7',
    and one not yet succeeded its status, '· failed': enough to tell sessions apart in a
    select."""
    parts = [
        f"{session.symbol} {session.interval}",
        selectors_web.model_label(session.model_kind),
        *(["production"] if session.kind == "production" else []),
        *selectors_web.parameter_changes(session),
    ]
    if session.fold is not None:
        parts.append(f"fold {session.fold}, seed {session.seed}")
    parts += [f"{session.created_at:%Y-%m-%d %H:%M}", str(session.id)[:8]]
    if session.status != "succeeded":  # running or failed: listed, but nothing to draw yet
        parts.append(session.status)
    return " · ".join(parts)
