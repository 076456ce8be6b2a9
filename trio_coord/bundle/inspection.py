"""``trio-coord inspect``: describe a packed bundle without running it (bundle.md §7.3).

The summary comes from the trailer, the manifest and, for trio-coord bundles, the
payload's ``_tc/bundle.json`` (tasks and their dependencies, vendored versions, the
interpreter policy). Nothing in the bundle is executed or imported.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

from . import format as bundle_format
from .launcher import MARKER
from .verify import examine, payload_info

__all__ = ["summarize", "add_arguments"]


def summarize(path: Path) -> dict[str, Any]:
    """Everything ``inspect`` prints, as a JSON-ready dict.

    Raises:
        bundle_format.BundleFormatError: not a bundle, or an unusable trailer.
        OSError: the file cannot be read.
    """
    read = bundle_format.read_bundle(path, keep_binary=True)
    if read is None:
        raise bundle_format.BundleFormatError(f"{path} is not a bundle (no AFBNDL01 trailer)")
    t = read.trailer
    binary = read.binary or b""
    info = payload_info(binary)
    marker = binary.find(MARKER)
    launcher_len = marker + len(MARKER) if marker >= 0 else None
    finding = examine(path, executable=True)
    if not os.access(path, os.X_OK):
        finding.notes.append("not executable by this user: the coordinator would ignore it")
    registry: dict[str, Any] = (info or {}).get("registry", {})
    dags: dict[str, Any] = {}
    for dag_id in finding.dags or list((info or {}).get("manifest", {}).get("dags", {})):
        detail = registry.get(dag_id, {})
        tasks = detail.get("tasks", {})
        manifest_tasks = ((info or {}).get("manifest", {}).get("dags", {}).get(dag_id) or {}).get(
            "tasks"
        )
        dags[dag_id] = {
            "tasks": list(tasks) if tasks else list(manifest_tasks or []),
            "schedule": detail.get("schedule"),
            "start_date": detail.get("start_date"),
            "dependencies": {
                tid: t_info["upstream"] for tid, t_info in tasks.items() if t_info["upstream"]
            },
            "queues": sorted({t_info["queue"] for t_info in tasks.values()}),
        }
    extensions: list[str] = []
    if info is not None:
        with zipfile.ZipFile(io.BytesIO(binary)) as zf:
            extensions = [
                n[4:] for n in zf.namelist() if n.startswith("lib/") and n.endswith((".so", ".pyd"))
            ]
    return {
        "path": str(path),
        "status": finding.status,
        "reason": finding.reason,
        "notes": finding.notes,
        "bundle": (info or {}).get("bundle"),
        "sdk": (info or {}).get("manifest", {}).get("sdk"),
        "schema_version": finding.schema_version,
        "hash_ok": read.hash_ok,
        "binary_sha256": t.binary_sha256.hex(),
        "sizes": {
            "total": t.size,
            "binary": t.source_start,
            "launcher": launcher_len,
            "payload": t.source_start - launcher_len if launcher_len is not None else None,
            "source": t.source_len,
            "metadata": t.metadata_len,
            "trailer": bundle_format.TRAILER_SIZE,
        },
        "python": {
            "min": (info or {}).get("min_python"),
            "isolation": (info or {}).get("isolation"),
            "interpreter": (info or {}).get("python") or "python3",
        }
        if info
        else None,
        "vendored": (info or {}).get("vendored", {}),
        "extensions": extensions,
        "dags": dags,
    }


def _text(s: dict[str, Any]) -> str:
    z = s["sizes"]
    lines = []
    if s["bundle"]:
        lines.append(f"bundle     {s['bundle']['name']} {s['bundle']['version']}  ({s['path']})")
    else:
        lines.append(f"bundle     {s['path']} (not packed by trio-coord)")
    split = (
        f" (launcher {z['launcher']} + payload {z['payload']})" if z["launcher"] is not None else ""
    )
    lines.append(
        f"size       {z['total']} bytes: binary {z['binary']}{split}, sources {z['source']}, "
        f"manifest {z['metadata']}, trailer {z['trailer']}"
    )
    lines.append(f"hash       {'ok' if s['hash_ok'] else 'MISMATCH'}  sha256 {s['binary_sha256']}")
    verdict = (
        "usable by the 1.3.2 coordinator"
        if s["status"] == "usable"
        else f"{s['status']}: {s['reason']}"
    )
    lines.append(f"status     {verdict}")
    lines += [f"note       {n}" for n in s["notes"]]
    if s["sdk"]:
        sdk = s["sdk"]
        lines.append(
            f"sdk        {sdk['language']} trio-coord {sdk['version']}, supervisor schema {sdk['supervisor_schema_version']}"
        )
    if s["python"]:
        p = s["python"]
        flags = "-I -S" if p["isolation"] == "hermetic" else "-I"
        lines.append(
            f"python     $TRIO_COORD_PYTHON or {p['interpreter']}, >= {p['min']}, {p['isolation']} ({flags})"
        )
    if s["vendored"]:
        lines.append("vendored   " + ", ".join(f"{k} {v}" for k, v in s["vendored"].items()))
    if s["extensions"]:
        lines.append("compiled   " + ", ".join(s["extensions"]))
    lines.append(f"dags       {len(s['dags'])}")
    for dag_id, d in s["dags"].items():
        extra = f"  schedule {d['schedule']}" if d.get("schedule") else ""
        queues = f"  queue {', '.join(d['queues'])}" if d.get("queues") else ""
        lines.append(f"  {dag_id}{extra}{queues}  ({len(d['tasks'])} tasks)")
        width = max((len(t) for t in d["tasks"]), default=0)
        for task_id in d["tasks"]:
            ups = d["dependencies"].get(task_id)
            lines.append(
                f"    {task_id:<{width}}  <- {', '.join(ups)}" if ups else f"    {task_id}"
            )
    return "\n".join(lines) + "\n"


def _sources(path: Path) -> str:
    read = bundle_format.read_bundle(path)
    if read is None:
        raise ValueError(f"{path} is not a packed bundle (no AFBNDL01 trailer)")
    yaml_text = read.metadata.decode("utf-8", "replace")
    try:
        import importlib

        manifest: Any = importlib.import_module("yaml").safe_load(yaml_text)
    except ImportError:
        manifest = None
    entries = manifest.get("sources") if isinstance(manifest, dict) else None
    out = []
    if read.source and not entries:
        raise bundle_format.BundleFormatError(
            "the source region has no 'sources' index in the manifest"
        )
    for entry in entries or []:
        start, length = int(entry["offset"]), int(entry["length"])
        if start < 0 or start + length > len(read.source):
            raise bundle_format.BundleFormatError(
                f"source {entry['path']!r} lies outside the source region"
            )
        text = read.source[start : start + length].decode("utf-8", "replace")
        out.append(
            f"# --- source: {entry['path']} ---\n{text if text.endswith(chr(10)) else text + chr(10)}"
        )
    out.append(f"# --- manifest ---\n{yaml_text}")
    return "".join(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``trio-coord inspect``."""
    parser.add_argument("bundle", type=Path, metavar="BUNDLE")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="print the summary as a JSON object")
    group.add_argument(
        "--source", action="store_true", help="print the embedded sources and the manifest"
    )
    group.add_argument("--trailer", action="store_true", help="print the trailer fields as JSON")
    group.add_argument("--manifest", action="store_true", help="print the manifest bytes")
    parser.set_defaults(handler=_main)


def _main(ns: argparse.Namespace) -> int:
    path: Path = ns.bundle
    try:
        if ns.source:
            sys.stdout.write(_sources(path))
            return 0
        read = bundle_format.read_bundle(path)
        if read is None:
            raise bundle_format.BundleFormatError(f"{path} is not a bundle (no AFBNDL01 trailer)")
        if ns.manifest:
            sys.stdout.write(read.metadata.decode("utf-8", "replace"))
            return 0
        if ns.trailer:
            t = read.trailer
            fields = {
                "size": t.size,
                "source_len": t.source_len,
                "metadata_len": t.metadata_len,
                "footer_ver": t.footer_ver,
                "binary_sha256": t.binary_sha256.hex(),
                "source_start": t.source_start,
                "metadata_start": t.metadata_start,
                "hash_ok": read.hash_ok,
            }
            sys.stdout.write(json.dumps(fields, indent=4) + "\n")
            return 0
        summary = summarize(path)
    except (bundle_format.BundleFormatError, OSError) as exc:
        sys.stderr.write(f"trio-coord inspect: error: {exc}\n")
        return 1
    sys.stdout.write(
        json.dumps(summary, indent=4, ensure_ascii=False) + "\n" if ns.json else _text(summary)
    )
    return 0 if summary["hash_ok"] else 1
