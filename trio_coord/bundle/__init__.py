"""Executable bundles: format, manifest, packer, importer, inspection and verification.

A bundle is one file the released ``ExecutableCoordinator`` (task-sdk 1.3.2) finds under
``executables_root`` and executes: a ``/bin/sh`` launcher and a ZIP payload (trio-coord,
its dependencies and the user's modules) in the hash-covered binary region, display
copies of the sources, a YAML manifest naming its DAGs, and the 64-byte ``AFBNDL01``
trailer. See docs/bundle-format.md. Importing this package is cheap; the submodules are
imported where needed.
"""
