"""The one exception that means "the user gave something wrong", and the checks configs make.

The CLI turns a ``UserError`` into one sentence and exit status 2; any other exception is a
bug and shows its traceback. Every module's own input errors (a bad MIDI file, a corrupt
checkpoint, a config value out of range) are UserErrors, so a caller can catch them all at
once; it is a ValueError, so code that caught those still does.

A config dataclass checks its own fields in ``__post_init__`` and raises a ``ConfigError``
naming the field; whoever filled the config names it as the user wrote it: the CLI as its
flag (``--batch-size 0: must be at least 1``), the experiment TOML as its key
(``fixed.batch_size: 0 must be at least 1``).
"""

from __future__ import annotations

import math

__all__ = ["ConfigError", "UserError", "check_at_least", "check_between", "shown"]


class UserError(ValueError):
    """Bad input: a file, option, key or value. The message is one sentence naming it."""


class ConfigError(UserError):
    """A config field holds a value it cannot take. ``problem`` completes "<value> ..." and
    "<field> <value>: ..." alike, e.g. "must be at least 1"."""

    def __init__(self, field: str, value: object, problem: str):
        self.field, self.value, self.problem = field, value, problem
        super().__init__(f"{field} {shown(value)}: {problem}")


def shown(value: object) -> str:
    """A value as a user typed it: 0.5, not 0.5000000001; 3, not 3.0."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_at_least(config: object, low: float, *names: str) -> None:
    """Each named field is ``low`` or more (None, where a field allows it, means unset)."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not value >= low:  # `not >=`: NaN fails too
            raise ConfigError(name, value, "must not be negative" if low == 0 else f"must be at least {shown(low)}")


def check_between(config: object, low: float, high: float, *names: str) -> None:
    """Each named field lies in [low, high] (None: unset, not checked)."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(name, value, f"must be between {shown(low)} and {shown(high)}")
