"""The packed bundle's command line: :func:`trio_coord.cli.bundle_main` over the payload.

Imported from the payload by ``_tc/boot.py`` after the importer is installed. The
bundle's identity (``--bundle-metadata``) comes from the packed ``bundle.json`` without
importing user code; every other mode imports the entry module from the payload.
``--warm-server`` (first argument, started by ``trio-coord warm``) makes this process a
warm server for the bundle instead (docs/warm-start.md).
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import TYPE_CHECKING, Any, Final

from ..authoring import Bundle
from ..cli import BundleLoadError, BundleSource, bundle_main

if TYPE_CHECKING:
    from .importer import PayloadFinder

__all__ = ["run_packed"]

#: ``trio_coord.warm.wire.WARM_SERVER_FLAG``, spelled out so a task's start does not
#: import the warm package.
WARM_SERVER_FLAG: Final = "--warm-server"


def run_packed(
    info: dict[str, Any],
    bundle_path: str,
    argv: list[str],
    launch_error: str | None,
    finder: PayloadFinder | None = None,
    *,
    digest: bytes = b"",
) -> int:
    """Run the bundle CLI for a packed bundle described by its ``bundle.json``.

    The importer's warnings (an unsafe cache directory, a skipped extension module) are
    logged when the bundle is loaded: under a supervisor that makes them one warning
    record in the task log rather than an error-level stderr line; in the metadata
    modes Python's last-resort handler prints them on stderr.
    """
    module_name, _, attr = str(info["entry"]).partition(":")
    ident = info["bundle"]

    def load(_spec: str | None) -> Bundle:
        if finder is not None:
            finder.route_notices(logging.getLogger("trio_coord.bundle").warning)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise BundleLoadError(
                f"importing {module_name} from {bundle_path} failed: {type(exc).__name__}: {exc}"
            ) from exc
        obj = getattr(module, attr, None)
        if not isinstance(obj, Bundle):
            raise BundleLoadError(f"{module_name}.{attr} is no longer a trio_coord.Bundle")
        return obj

    source = BundleSource(
        prog=os.path.basename(bundle_path),
        load=load,
        identity=lambda: (str(ident["name"]), ident.get("version")),
        launch_error=launch_error,
    )
    if argv[:1] == [WARM_SERVER_FLAG]:
        from ..warm.server import serve_packed

        return serve_packed(source, info, bundle_path, digest, argv[1:])
    return bundle_main(argv, source)
