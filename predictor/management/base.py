"""The base of every predictor command: an expected error ends it the same way everywhere.

Any CryptoOracleError (utils.errors) that reaches a command becomes a CommandError with the
error's own one-line message, so Django prints "CommandError: <message>" and exits 1, and
the commands hold no try/except of their own for it. Other exceptions are bugs and keep
their traceback.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from utils.errors import CryptoOracleError


class OracleCommand(BaseCommand):
    """BaseCommand whose expected errors become CommandError(str(error))."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except CryptoOracleError as error:
            raise CommandError(str(error)) from error
