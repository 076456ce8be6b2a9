"""Finding the user's bundle: ``module:attr``, ``path/to/file.py:attr``, or a bare path.

Every failure here is the user's to fix (a typo, a missing file, an import error in
their code), so each becomes one :class:`UsageError` sentence rather than a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .authoring import Bundle
from .authoring.taskflow import finalize_bundle
from .errors import UsageError

__all__ = ["load_bundle", "BUNDLE_ENV"]

#: Environment variable naming the bundle when ``--bundle`` is not given.
BUNDLE_ENV = "TRIO_COORD_BUNDLE"


def load_bundle(spec: str | None) -> Bundle:
    """Import the bundle named by ``spec`` (or ``$TRIO_COORD_BUNDLE``).

    Raises:
        UsageError: nothing named, the module or file does not import, or it holds no
            (or more than one unnamed) :class:`Bundle`.
    """
    spec = spec or os.environ.get(BUNDLE_ENV)
    if not spec:
        raise UsageError(f"no bundle given: pass --bundle MODULE:ATTR or set {BUNDLE_ENV}")
    target, _, attr = spec.partition(":") if not _is_windows_drive(spec) else (spec, "", "")
    module = _import_target(target)
    if attr:
        obj = getattr(module, attr, None)
        if not isinstance(obj, Bundle):
            raise UsageError(f"{spec}: {attr!r} is not a trio_coord.Bundle in {target}")
        return _complete(spec, obj)
    found = [v for v in vars(module).values() if isinstance(v, Bundle)]
    unique = list({id(b): b for b in found}.values())
    if len(unique) != 1:
        what = "no" if not unique else f"{len(unique)}"
        raise UsageError(
            f"{spec}: {what} trio_coord.Bundle objects found; name one as {target}:ATTR"
        )
    return _complete(spec, unique[0])


def _complete(spec: str, bundle: Bundle) -> Bundle:
    """The bundle once every DAG is complete (each task's required parameters given)."""
    try:
        finalize_bundle(bundle)
    except UsageError as exc:
        raise UsageError(f"bundle {spec!r}: {exc}") from None
    return bundle


def _is_windows_drive(spec: str) -> bool:
    return len(spec) > 2 and spec[1] == ":" and spec[2] in "\\/"


def _import_target(target: str) -> ModuleType:
    try:
        if target.endswith(".py") or os.sep in target or "/" in target:
            return _import_file(Path(target))
        return importlib.import_module(target)
    except _LoaderError as exc:
        raise UsageError(str(exc)) from None
    except UsageError as exc:
        # Raised by the bundle's own declarations (e.g. retries=-1): keep the traceback,
        # which points at the user's line.
        raise UsageError(f"bundle {target!r}: {exc}") from exc
    except ModuleNotFoundError as exc:
        if exc.name == target:
            raise UsageError(f"cannot import bundle module {target!r}: {exc}") from None
        raise UsageError(f"importing bundle {target!r} failed: {exc}") from exc
    except Exception as exc:
        raise UsageError(
            f"importing bundle {target!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


class _LoaderError(UsageError):
    """The loader's own refusal (no such file), as opposed to one raised by the bundle."""


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise _LoaderError(f"bundle file {str(path)!r} does not exist")
    name = "_trio_coord_bundle_" + path.stem.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _LoaderError(f"{str(path)!r} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    directory = str(path.resolve().parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # so the bundle's sibling modules import
    spec.loader.exec_module(module)
    return module
