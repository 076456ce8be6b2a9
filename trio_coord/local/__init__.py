"""``trio-coord run``: try one task on this machine against an embedded supervisor.

No Airflow is needed: the task runs in a real ``trio-coord serve`` process, over real
sockets, and the supervisor it talks to answers from values given on the command line.
See ``docs/local-run.md``.
"""

from __future__ import annotations

from .command import main

__all__ = ["main"]
