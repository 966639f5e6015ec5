"""The one base class of the project's expected errors.

An expected error is bad input or a state a person can fix (an unknown session, a flag out of
range, a file in no known layout): its message is one line meant for that person. Commands
turn any of them into a CommandError (predictor.management.base.OracleCommand) and the web
into a 400 with the message (predictor.middleware.ExpectedErrorMiddleware), so a new error
class needs no new except clause anywhere: deriving from CryptoOracleError is enough.

It derives from ValueError because most of them were ValueErrors before there was a base:
callers that catch ValueError keep catching them. Django-free, so utils/ can raise it too.
"""


class CryptoOracleError(ValueError):
    """An expected failure; str(error) is one line for a person, nothing was half-written."""
