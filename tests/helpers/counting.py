"""Count how often an object's method is called, without changing what it does."""

from __future__ import annotations

from typing import Any


class CallCounter:
    """Wraps ``obj.<name>`` in place; ``calls`` grows by one per call."""

    def __init__(self, obj: Any, name: str) -> None:
        self.calls = 0
        real = getattr(obj, name)

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        setattr(obj, name, counting)
