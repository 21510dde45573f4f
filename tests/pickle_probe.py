"""A payload that records being unpickled, so tests can prove a loader never unpickles."""

from __future__ import annotations

CALLS: list[str] = []


def record(what: str) -> str:
    CALLS.append(what)
    return what


class Exploit:
    """Unpickling this calls `record`, which is how the test sees any unpickling happen."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (record, ("unpickled",))
