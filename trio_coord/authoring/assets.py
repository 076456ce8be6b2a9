"""Assets: what tasks produce and consume, and what a DAG may be scheduled on.

The names, defaults and checks are Airflow 3.3's (``airflow.sdk.Asset``, ``AssetAlias``,
``AssetAll``, ``AssetAny``), so a bundle reads like an Airflow DAG file and an asset
declared here is the same asset, with the same name and URI, as one declared in Python:
the scheduler matches producers and consumers by ``(name, uri)``.

* ``Asset("s3://bucket/key")``: the name defaults to the URI, and the URI to the name;
  a URI is normalized as Airflow does (lower-case scheme, no trailing ``/``, sorted query,
  no fragment, no password) and the ``airflow`` scheme is refused.
* ``AssetAlias("name")``: an asset named only at run time (a task adds events through it).
* ``a & b`` (all of them) and ``a | b`` (any of them), nested freely: a DAG's asset schedule.

URI normalizers that providers register (``s3``, ``postgres``...) are not applied: a
provider is not something a bundle imports. Write such URIs in their normal form.
"""

from __future__ import annotations

import json
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Final

from ..errors import UsageError
from .validation import check_json_dict

__all__ = [
    "Asset",
    "AssetAlias",
    "AssetAll",
    "AssetAny",
    "BaseAsset",
    "iter_leaves",
]

#: Airflow's limit on an asset's name, URI and group (the metadata DB column width).
MAX_IDENTIFIER: Final = 1500
#: Names Airflow refuses for an asset (they would shadow template variables).
RESERVED_NAMES: Final = frozenset({"self", "context"})


def _identifier(kind: str, field: str, value: Any, *, empty: bool) -> str:
    where = f"{kind} {field}"
    if not isinstance(value, str):
        raise UsageError(f"{where} must be a string, got {type(value).__name__}")
    if len(value) > MAX_IDENTIFIER:
        raise UsageError(f"{where} cannot exceed {MAX_IDENTIFIER} characters")
    if value.isspace():
        raise UsageError(f"{where} cannot be just whitespace")
    if not value and not empty:
        raise UsageError(f"{where} cannot be empty")
    return value


def normalize_uri(uri: str) -> str:
    """The URI as Airflow stores it; a plain name (no scheme) is kept as written."""
    parsed = urllib.parse.urlsplit(uri)
    if not parsed.scheme and not parsed.netloc:
        return uri
    scheme = parsed.scheme.lower()
    if not scheme or scheme.startswith("x-"):
        return uri
    if scheme == "airflow":
        raise UsageError(f"asset uri {uri!r}: the 'airflow' scheme is reserved by Airflow")
    netloc = parsed.netloc
    if parsed.password:
        warnings.warn(
            "an asset URI should not hold a password; its user info is dropped",
            UserWarning,
            stacklevel=4,
        )
        netloc = netloc.rpartition("@")[2]
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parsed.query)))
    return urllib.parse.urlunsplit(
        (scheme, netloc, parsed.path.rstrip("/") or "/", query if parsed.query else "", "")
    )


class BaseAsset:
    """Anything a DAG can be scheduled on; ``&`` and ``|`` combine them."""

    __slots__ = ()

    def __and__(self, other: object) -> BaseAsset:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(self, other)

    def __or__(self, other: object) -> BaseAsset:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(self, other)


class Asset(BaseAsset):
    """A data asset, identified by ``(name, uri)`` (give at least one of them)."""

    __slots__ = ("extra", "group", "name", "uri")

    name: str
    uri: str
    group: str
    extra: dict[str, Any]

    def __init__(
        self,
        name: str | None = None,
        uri: str | None = None,
        *,
        group: str = "asset",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if name is None and uri is None:
            raise UsageError("Asset() needs a name or a uri (or both)")
        if name is None:
            name = uri
        elif uri is None:
            uri = name
        name = _identifier("asset", "name", name, empty=False)
        if name in RESERVED_NAMES:
            raise UsageError(f"asset name {name!r} is reserved by Airflow")
        uri = normalize_uri(_identifier("asset", "uri", uri, empty=False))
        group = _identifier("asset", "group", group, empty=True)
        extra = check_json_dict(f"asset {name!r}: extra", {} if extra is None else extra)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "extra", dict(extra))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("an Asset is immutable")

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the asset to the scheduler (Airflow's ``AssetUniqueKey``)."""
        return (self.name, self.uri)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Asset):
            return NotImplemented
        return (self.name, self.uri, self.group, self.extra) == (
            other.name,
            other.uri,
            other.group,
            other.extra,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.uri, self.group, json.dumps(self.extra, sort_keys=True)))

    def __repr__(self) -> str:
        return f"Asset(name={self.name!r}, uri={self.uri!r}, group={self.group!r})"


class AssetAlias(BaseAsset):
    """An alias: the task decides at run time which asset(s) its events are for."""

    __slots__ = ("group", "name")

    name: str
    group: str

    def __init__(self, name: str, *, group: str = "asset") -> None:
        object.__setattr__(self, "name", _identifier("asset alias", "name", name, empty=False))
        object.__setattr__(self, "group", _identifier("asset alias", "group", group, empty=True))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("an AssetAlias is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AssetAlias):
            return NotImplemented
        return (self.name, self.group) == (other.name, other.group)

    def __hash__(self) -> int:
        return hash(("alias", self.name, self.group))

    def __repr__(self) -> str:
        return f"AssetAlias(name={self.name!r}, group={self.group!r})"


class _Condition(BaseAsset):
    __slots__ = ("objects",)

    objects: tuple[BaseAsset, ...]

    def __init__(self, *objects: BaseAsset) -> None:
        for o in objects:
            if not isinstance(o, BaseAsset):
                raise UsageError(
                    f"{type(self).__name__} combines assets, aliases and asset conditions, "
                    f"got {type(o).__name__}"
                )
        if not objects:
            raise UsageError(f"{type(self).__name__}() needs at least one asset")
        object.__setattr__(self, "objects", tuple(objects))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("an asset condition is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.objects == other.objects

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.objects))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.objects))})"


class AssetAll(_Condition):
    """Every one of the assets (``a & b``): the DAG runs once all have new events."""

    __slots__ = ()

    def __and__(self, other: object) -> BaseAsset:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(*self.objects, other)


class AssetAny(_Condition):
    """Any one of the assets (``a | b``): the DAG runs when one has a new event."""

    __slots__ = ()

    def __or__(self, other: object) -> BaseAsset:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(*self.objects, other)


def iter_leaves(condition: BaseAsset) -> Iterator[Asset | AssetAlias]:
    """The assets and aliases of a condition, depth first, in the order written."""
    if isinstance(condition, _Condition):
        for o in condition.objects:
            yield from iter_leaves(o)
    elif isinstance(condition, Asset | AssetAlias):
        yield condition
