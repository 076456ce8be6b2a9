"""The bundle manifest (bundle.md §4) and the metadata documents of the bundle CLI (§6.2).

The manifest is YAML read by the coordinator with ``yaml.safe_load`` (YAML 1.1), where
``2026-06-16`` is a date, ``1.0`` a float and ``true``/``123`` are not strings. A dag id of
``123`` written plain would never match ``ti.dag_id == "123"``. So every string scalar,
mapping keys that are ids included, is written as a JSON string literal (which is a valid
YAML double-quoted scalar); only the fixed schema keys stay plain. The renderer is a few
lines of code instead of a YAML dependency: the runtime never parses YAML, and the packer
checks its output with PyYAML when that is installed (§4.4 rule 7).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from .. import __version__

if TYPE_CHECKING:
    from ..authoring import Bundle

__all__ = [
    "METADATA_VERSION",
    "SUPERVISOR_SCHEMA_VERSION",
    "KNOWN_SCHEMA_VERSIONS",
    "LANGUAGE",
    "IdKeys",
    "bundle_spec",
    "spec_document",
    "build_manifest",
    "cache_digest",
    "render_json",
    "render_yaml",
    "yaml_quote",
]

#: ``airflow_bundle_metadata_version``: the manifest schema version (ignored by 1.3.2).
METADATA_VERSION: Final = "1.0"
#: The supervisor wire-schema version this runtime speaks; the only one 1.3.2 resolves.
SUPERVISOR_SCHEMA_VERSION: Final = "2026-06-16"
#: Versions apache-airflow-task-sdk 1.3.2's schema bundle knows (``resolve_version``).
KNOWN_SCHEMA_VERSIONS: Final = frozenset({SUPERVISOR_SCHEMA_VERSION})
LANGUAGE: Final = "python"
_CACHE_DIGEST_TAG: Final = b"trio-coord cache digest v1\0"


class IdKeys(dict[str, Any]):
    """A mapping whose keys are data (dag ids), so the YAML renderer quotes them."""


def spec_document(dags: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The ``--dump-bundle-spec`` / ``--airflow-metadata`` document (§6.2) for ``dags``.

    Args:
        dags: dag id -> task ids in registration order.
    """
    return {
        "airflow_bundle_metadata_version": METADATA_VERSION,
        "sdk": {
            "language": LANGUAGE,
            "version": __version__,
            "supervisor_schema_version": SUPERVISOR_SCHEMA_VERSION,
        },
        "dags": IdKeys({d: {"tasks": list(dags[d])} for d in sorted(dags)}),
    }


def bundle_spec(bundle: Bundle) -> dict[str, Any]:
    """The live spec of a loaded bundle: its registry, walked like Go's recorder."""
    return spec_document({d.dag_id: list(d.tasks) for d in bundle.dags.values()})


def build_manifest(
    spec: Mapping[str, Any],
    *,
    source: str,
    sources: Iterable[Mapping[str, Any]],
    bundle_name: str,
    bundle_version: str,
    digests: Mapping[str, str] | None,
    fingerprints: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest of §4.4, keys in the normative order.

    ``sources`` entries are ``{"path", "offset", "length", "sha256"}``; the first is the
    entry module. ``digests`` is None while computing the cache digest (which covers the
    manifest rendered without it). ``fingerprints`` (dag id -> canonical JSON of the
    DAG's structure) become ``dag_fingerprints``, which ``trio-coord verify --dag-file``
    compares with the DAG file; consumers that do not know the key ignore it (§4.1).
    """
    entries = [dict(e) for e in sources]
    doc: dict[str, Any] = {
        "airflow_bundle_metadata_version": spec["airflow_bundle_metadata_version"],
        "sdk": dict(spec["sdk"]),
        "source": source,
        "dags": IdKeys(spec["dags"]),
    }
    if entries:
        doc["entrypoint_path"] = entries[0]["path"]
        doc["sources"] = entries
    doc["bundle"] = {"name": bundle_name, "version": bundle_version}
    if fingerprints:
        doc["dag_fingerprints"] = IdKeys(fingerprints)
    if digests is not None:
        doc["digests"] = dict(digests)
    return doc


def cache_digest(binary_sha256: bytes, source: bytes, manifest_without_digests: bytes) -> str:
    """``digests.cache`` (§4.4 rule 6): a change detector over all three regions."""
    h = hashlib.sha256(_CACHE_DIGEST_TAG)
    h.update(binary_sha256)
    h.update(hashlib.sha256(source).digest())
    h.update(hashlib.sha256(manifest_without_digests).digest())
    return h.hexdigest()


def render_json(doc: Mapping[str, Any]) -> str:
    """4-space JSON with literal UTF-8 and one trailing newline (the Go layout)."""
    return json.dumps(doc, indent=4, ensure_ascii=False) + "\n"


def _needs_escape(cp: int) -> bool:
    # JSON escapes C0 itself. YAML additionally forbids (or folds) DEL, C1 controls,
    # the line/paragraph separators and the non-characters U+FFFE/U+FFFF; PyYAML does not
    # pair JSON surrogate escapes, so astral characters stay literal.
    return cp == 0x7F or 0x80 <= cp <= 0x9F or cp in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF)


def yaml_quote(value: str) -> str:
    """``value`` as a JSON string literal that YAML 1.1 reads back unchanged."""
    text = json.dumps(value, ensure_ascii=False)
    if any(_needs_escape(ord(c)) for c in text):
        text = "".join(f"\\u{ord(c):04x}" if _needs_escape(ord(c)) else c for c in text)
    return text


def _scalar(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise TypeError(f"the manifest holds only strings and integers, not {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return yaml_quote(value)
    raise TypeError(f"cannot render {type(value).__name__} in a manifest")


def _render(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            k = yaml_quote(key) if isinstance(value, IdKeys) else key
            _render_entry(f"{pad}{k}:", item, indent, out)
    else:
        for item in value:
            if isinstance(item, Mapping) and item:
                first = True
                for key, sub in item.items():
                    lead = f"{pad}- " if first else f"{pad}  "
                    _render_entry(f"{lead}{key}:", sub, indent + 2, out)
                    first = False
            else:
                _render_entry(f"{pad}-", item, indent, out)


def _render_entry(head: str, item: Any, indent: int, out: list[str]) -> None:
    if isinstance(item, Mapping | list | tuple):
        if not item:
            out.append(f"{head} {'{}' if isinstance(item, Mapping) else '[]'}")
            return
        out.append(head)
        _render(item, indent + 2, out)
    else:
        out.append(f"{head} {_scalar(item)}")


def render_yaml(doc: Mapping[str, Any]) -> str:
    """Block YAML per §4.4: two-space indent, every string double-quoted, ``\\n`` ends.

    Mappings wrapped in :class:`IdKeys` get quoted keys; other keys are schema words and
    stay plain. No comments, anchors, tags or document markers.
    """
    out: list[str] = []
    _render(doc, 0, out)
    return "\n".join(out) + "\n"


def identity(name: str, version: str | None) -> dict[str, Any]:
    """The ``--bundle-metadata`` document: the Go E2a ``BundleInfo`` keys of bundle.md §6.2.

    The Go SDK's key spelling, so bundles of either SDK answer alike (docs/decisions.md).
    """
    return {"Name": name, "Version": version}
