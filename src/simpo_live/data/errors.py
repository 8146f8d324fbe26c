"""The one error type of the data layer: a file or row that cannot be used, with where and what."""

from simpo_live.errors import UserError


class DataError(UserError):
    """Bad preference data. The message starts with the file (and line/row) and names the field."""
