"""./manage.py audit_bars [-s SYMBOL] [-b BAR_LENGTH] [--fix]: check the stored bars."""

from django.core.management.base import CommandError
from django.utils import timezone

from predictor.management.base import OracleCommand
from predictor.management.series_flags import add_series_flags
from predictor.selectors.audit import Scope, audit_series, stored_series_keys
from predictor.services.auditing import (
    delete_untrustworthy_bars,
    deleted_lines,
    problem_lines,
    summary_line,
)

SERIES_NAMED = 10  # stored series named when the flags match none


class Command(OracleCommand):
    help = (
        "Check stored series for bars off their grid, impossible values, mixed exchanges, "
        "provisional bars and gaps, one line per problem. --fix deletes the bars that cannot "
        "be right (off the grid, impossible values) in one transaction; predictions are kept."
    )

    def add_arguments(self, parser):
        add_series_flags(parser)
        parser.add_argument(
            "--fix", action="store_true", help="delete the bars that cannot be right"
        )

    def handle(self, *args, **options):
        scope = Scope(
            symbols=tuple(s.strip().upper() for s in options["symbol"]),
            bar_lengths=tuple(b.strip() for b in options["bar_length"]),
        )
        now = timezone.now()
        audits = audit_series(scope, now=now)
        if not audits:
            self._nothing_to_audit(scope)
            return
        for audit in audits:
            for line in problem_lines(audit):
                self.stdout.write(line)
        bad = sum(a.bad_count for a in audits)
        if not bad or not options["fix"]:
            self.stdout.write(summary_line(audits))
            if bad:
                raise CommandError(
                    f"{bad:,} stored bars cannot be right (off the grid or impossible values): "
                    f"`manage.py audit_bars{_flags(scope)} --fix` deletes them"
                )
            return
        deleted = delete_untrustworthy_bars(scope, now=now)
        for line in deleted_lines(deleted, audits):
            self.stdout.write(line)
        self.stdout.write(summary_line(audits, deleted=sum(d.bars.count for d in deleted)))

    def _nothing_to_audit(self, scope: Scope) -> None:
        if scope == Scope():
            self.stdout.write("no stored bars: nothing to audit")
            return
        keys = stored_series_keys(Scope())
        stored = ", ".join(f"{s} {b}" for s, b in keys[:SERIES_NAMED]) or "none"
        more = f" and {len(keys) - SERIES_NAMED} more" if len(keys) > SERIES_NAMED else ""
        raise CommandError(f"no stored series match{_flags(scope)} (stored: {stored}{more})")


def _flags(scope: Scope) -> str:
    return "".join(f" -s {s}" for s in scope.symbols) + "".join(
        f" -b {b}" for b in scope.bar_lengths
    )
