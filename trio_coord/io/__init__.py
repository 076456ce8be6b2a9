"""Object storage for tasks: ``ObjectStoragePath`` over fsspec, credentials from a connection.

fsspec is an optional dependency (the ``objectstore`` extra); importing this package
does not import it.
"""

from .options import CONNECTION_PROTOCOLS, storage_options
from .path import ObjectStoragePath, StatResult

__all__ = ["CONNECTION_PROTOCOLS", "ObjectStoragePath", "StatResult", "storage_options"]
