"""Fixtures of the bad-input corpus (see corpus.py)."""

from corpus import error_env  # noqa: F401  (a module-scoped fixture shared by every category)
