"""Child-process side of ``trio-coord pack``: import the bundle and describe it as JSON.

The packer runs this in a fresh ``python -I`` so the user's module-level code runs in
isolation (and in the same way ``--dump-bundle-spec`` will run it later), and so the set
of modules the bundle imports can be read off ``sys.modules`` afterwards. The result goes
to a file, not stdout, because user code may print while it is imported.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = ["main", "describe"]


def describe(bundle: Any) -> dict[str, Any]:
    """The registry of a loaded bundle: what the manifest, ``inspect`` and checks need."""
    dags: dict[str, Any] = {}
    for d in bundle.dags.values():
        dags[d.dag_id] = {
            "schedule": d.schedule_text,
            "start_date": d.start_date.isoformat() if d.start_date else None,
            "tags": list(d.tags),
            "tasks": {
                t.task_id: {
                    "upstream": list(t.upstream),
                    "queue": t.effective_queue,
                    "retries": t.effective_retries,
                    "async": t.is_async,
                }
                for t in d.tasks.values()
            },
        }
    from .drift import fingerprints

    return {
        "name": bundle.name,
        "version": bundle.version,
        "dags": dags,
        "fingerprints": fingerprints(bundle),
    }


def main(argv: list[str]) -> int:
    """``ENTRY OUT_JSON APP_ROOT``: load ENTRY, write its description to OUT_JSON."""
    entry, out, app_root = argv
    if app_root and app_root not in sys.path:
        sys.path.insert(0, app_root)
    before = set(sys.modules)
    from trio_coord.loader import load_bundle
    from trio_coord.tracebacks import user_traceback

    result: dict[str, Any]
    try:
        bundle = load_bundle(entry)
    except Exception as exc:
        cause = exc.__cause__ or exc
        detail = user_traceback(cause) if cause is not exc or not _is_usage(exc) else ""
        result = {"error": str(exc), "traceback": detail}
    else:
        owner, attr = _owner(bundle, entry)
        modules = {
            name: os.path.abspath(getattr(m, "__file__", None) or "")
            for name, m in sorted(sys.modules.items())
            if name not in before and getattr(m, "__file__", None) and m is not owner
        }
        result = {
            **describe(bundle),
            "entry_module": owner.__name__ if owner else None,
            "entry_file": os.path.abspath(owner.__file__) if owner and owner.__file__ else None,
            "attr": attr,
            "modules": modules,
        }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


def _is_usage(exc: BaseException) -> bool:
    from trio_coord.errors import UsageError

    return isinstance(exc, UsageError)


def _owner(bundle: Any, entry: str) -> tuple[Any, str]:
    target = entry.partition(":")[0]
    module: Any = None
    if target.endswith(".py") or "/" in target or os.sep in target:
        wanted = os.path.realpath(target)
        for m in list(sys.modules.values()):
            f = getattr(m, "__file__", None)
            if f and os.path.realpath(f) == wanted:
                module = m
                break
    else:
        module = sys.modules.get(target)
    for key, value in vars(module).items() if module is not None else ():
        if value is bundle and not key.startswith("__"):
            return module, key
    return module, ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
