"""The -s/--symbol and -b/--bar-length flags shared by commands that act on stored series.

update_stocks and audit_bars narrow their work the same way, so a user learns the flags once.
"""

from argparse import ArgumentParser


def add_series_flags(parser: ArgumentParser) -> None:
    """-s SYMBOL and -b BAR_LENGTH, each repeatable; both default to every stored series."""
    parser.add_argument(
        "-s", "--symbol", action="append", default=[], help="only this symbol (repeatable)"
    )
    parser.add_argument(
        "-b",
        "--bar-length",
        action="append",
        default=[],
        help="only this bar length, e.g. 1h (repeatable)",
    )
