"""The one exception that means "the user gave something wrong".

The CLI turns a ``UserError`` into one sentence and exit status 2; any other exception is a
bug and shows its traceback. Every module's own input errors (a bad MIDI file, a corrupt
checkpoint, a config value out of range) are UserErrors, so a caller can catch them all at
once; it is a ValueError, so code that caught those still does.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """Bad input: a file, option, key or value. The message is one sentence naming it."""
