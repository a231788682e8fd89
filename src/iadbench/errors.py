"""User-facing errors: every message names the file and the rule it broke."""

from __future__ import annotations

from pathlib import Path


class IadbenchError(Exception):
    """An error caused by the user's input, printed without a traceback by the CLI."""


class InputError(IadbenchError):
    """A file (or folder) breaks a named rule.

    The message reads ``<file>: <rule>[: <detail>]`` so that a user can find the file and knows what to fix.
    """

    def __init__(self, file: str | Path, rule: str, detail: str = "") -> None:
        self.file = str(file)
        self.rule = rule
        self.detail = detail
        message = f"{self.file}: {rule}"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class InputErrors(IadbenchError):
    """Several :class:`InputError` found in one pass, reported together rather than one per run."""

    def __init__(self, errors: list[InputError], limit: int = 50) -> None:
        self.errors = errors
        shown = "\n".join(f"  - {e}" for e in errors[:limit])
        more = f"\n  ... and {len(errors) - limit} more" if len(errors) > limit else ""
        super().__init__(f"{len(errors)} problem(s) found:\n{shown}{more}")


class ParamsError(IadbenchError):
    """A value in ``params.yaml`` is missing or out of range."""


class GateFailed(IadbenchError):
    """A gate found error-severity violations (already printed); the command exits 1."""


class UsageError(IadbenchError):
    """A command-line request that cannot be answered as asked (an unknown category, a profile without images,
    constraints no candidate meets); the message says what exists or what excluded what.
    """
