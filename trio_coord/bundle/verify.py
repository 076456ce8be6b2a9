"""``trio-coord verify``: judge bundles the way task-sdk 1.3.2's coordinator will.

:func:`examine` reaches, for one file, the outcome ``_read_bundle_metadata`` plus the
schema check of ``_Bundle.find`` would (bundle.md §3.5-3.6): ignored (not a bundle, or not
executable), skipped (bad trailer, hash mismatch, unreadable manifest), rejected (no
usable ``sdk.supervisor_schema_version``) or usable for the dag ids its manifest lists.
:func:`walk` visits an ``executables_root`` in the coordinator's order (``iterdir`` order,
symlinks followed, directories de-duplicated), and :func:`discover` answers "which file
runs dag D": the first usable one in that order. Two bundles declaring one dag id is the
first-match-wins trap: which one runs depends on directory order, so verify reports it.

The manifest is parsed with PyYAML's ``safe_load``, as the coordinator does; without
PyYAML the payload's JSON copy is used and the report says so.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import stat
import sys
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import format as bundle_format
from .manifest import KNOWN_SCHEMA_VERSIONS

__all__ = ["Finding", "examine", "walk", "discover", "add_arguments", "payload_info"]


@dataclass
class Finding:
    """What the coordinator would make of one file."""

    path: Path
    #: ``ignored``, ``skipped``, ``rejected`` or ``usable``.
    status: str
    reason: str = ""
    dags: list[str] = field(default_factory=list)
    schema_version: str | None = None
    notes: list[str] = field(default_factory=list)
    #: dag id -> fingerprint JSON, from the manifest's ``dag_fingerprints`` (drift.py).
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.status == "usable"


def _yaml() -> Any:
    try:
        return importlib.import_module("yaml")
    except ImportError:
        return None


def payload_info(binary: bytes) -> dict[str, Any] | None:
    """The ``_tc/bundle.json`` of a trio-coord payload, or None for any other bundle."""
    try:
        with zipfile.ZipFile(io.BytesIO(binary)) as zf:
            data: dict[str, Any] = json.loads(zf.read("_tc/bundle.json"))
            return data
    except (zipfile.BadZipFile, KeyError, ValueError):
        return None


def examine(path: Path, *, executable: bool | None = None) -> Finding:
    """Read one file as the 1.3.2 coordinator would.

    Args:
        executable: whether the worker user may execute it; default ``os.access(X_OK)``.
    """
    if executable is None:
        executable = os.access(path, os.X_OK)
    try:
        read = bundle_format.read_bundle(path, keep_binary=True)
    except bundle_format.BundleFormatError as exc:
        return Finding(path, "skipped", f"invalid bundle trailer: {exc}")
    except OSError as exc:
        return Finding(path, "skipped", f"cannot read: {exc.strerror or exc}")
    if read is None:
        return Finding(path, "ignored", "not a bundle (no AFBNDL01 trailer)")
    if not executable:
        return Finding(path, "ignored", "has a bundle trailer but is not executable by this user")
    if not read.hash_ok:
        return Finding(
            path, "skipped", "binary_sha256 mismatch: the binary region was modified or damaged"
        )
    notes: list[str] = []
    yaml = _yaml()
    metadata: Any
    try:
        text = read.metadata.decode("utf-8")
    except UnicodeDecodeError:
        return Finding(path, "skipped", "cannot decode bundle metadata: not UTF-8")
    if yaml is not None:
        try:
            metadata = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return Finding(path, "skipped", f"cannot decode bundle metadata: {exc}")
    else:
        info = payload_info(read.binary or b"")
        if info is None:
            return Finding(path, "skipped", "cannot check the manifest: PyYAML is not installed")
        metadata = info["manifest"]
        notes.append("manifest read from the payload's JSON copy (PyYAML is not installed)")
    if not isinstance(metadata, dict):
        return Finding(
            path, "skipped", f"bundle metadata is not a mapping ({type(metadata).__name__})"
        )
    dags = metadata.get("dags")
    dag_ids: list[str] = []
    if isinstance(dags, dict):
        for key in dags:
            if isinstance(key, str):
                dag_ids.append(key)
            else:
                notes.append(
                    f"dag key {key!r} is read as {type(key).__name__}, so no task ever matches it; quote it"
                )
    else:
        notes.append("manifest has no 'dags' mapping: no task will ever run this bundle")
    sdk = metadata.get("sdk")
    version = sdk.get("supervisor_schema_version") if isinstance(sdk, dict) else None
    if not isinstance(version, str) or not version:
        return Finding(
            path,
            "rejected",
            "missing or invalid sdk.supervisor_schema_version",
            dag_ids,
            None,
            notes,
        )
    if version not in KNOWN_SCHEMA_VERSIONS:
        return Finding(
            path,
            "rejected",
            f"Version {version!r} not found in supervisor schema bundle",
            dag_ids,
            version,
            notes,
        )
    finding = Finding(path, "usable", "", dag_ids, version, notes)
    recorded = metadata.get("dag_fingerprints")
    if isinstance(recorded, dict):
        finding.fingerprints = {str(k): str(v) for k, v in recorded.items()}
    return finding


def walk(roots: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
    """Regular files under ``roots`` in the coordinator's order, with their X_OK bit.

    The coordinator itself only looks at executable ones; the others are yielded too so
    verify can point out a bundle that lost its execute bit.
    """
    seen: set[tuple[int, int]] = set()

    def visit(items: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
        for item in items:
            try:
                st = item.stat()
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                try:
                    children = list(item.iterdir())
                except OSError:
                    continue
                yield from visit(children)
            elif stat.S_ISREG(st.st_mode):
                yield item, os.access(item, os.X_OK)

    yield from visit(roots)


@dataclass
class Discovery:
    """Every file under the roots, and which usable bundles declare which dag ids."""

    findings: list[Finding]
    by_dag: dict[str, list[Finding]]

    def pick(self, dag_id: str) -> Finding | None:
        """The bundle 1.3.2 runs for ``dag_id``: the first usable one in walk order."""
        for f in self.by_dag.get(dag_id, []):
            if f.usable:
                return f
        return None

    def conflicts(self) -> dict[str, list[Finding]]:
        return {d: fs for d, fs in self.by_dag.items() if len([f for f in fs if f.usable]) > 1}


def discover(roots: Sequence[Path]) -> Discovery:
    """Examine every file under ``roots`` in walk order."""
    findings: list[Finding] = []
    by_dag: dict[str, list[Finding]] = {}
    for path, executable in walk(roots):
        finding = examine(path, executable=executable)
        finding.path = path.resolve()
        findings.append(finding)
        for dag_id in finding.dags:
            by_dag.setdefault(dag_id, []).append(finding)
    return Discovery(findings, by_dag)


def _describe(f: Finding) -> str:
    if f.status == "ignored" and "not executable" in f.reason:
        return f"ignored: {f.path}: {f.reason}, so the coordinator skips it: run chmod +x {f.path}"
    if f.usable:
        text = f"usable: {f.path}: dags {', '.join(repr(d) for d in f.dags) or '(none)'} (schema {f.schema_version})"
    else:
        text = f"{f.status}: {f.path}: {f.reason}"
    return text + "".join(f"\n    note: {n}" for n in f.notes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``trio-coord verify``."""
    parser.add_argument(
        "bundles", nargs="*", metavar="BUNDLE", type=Path, help="bundle files to check"
    )
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="an executables_root to walk like the coordinator (repeatable, in configured order)",
    )
    parser.add_argument(
        "--dag-id", help="check which bundle the coordinator would run for this dag id"
    )
    parser.add_argument(
        "--dag-file",
        type=Path,
        metavar="FILE",
        help="compare the DAGs of this Python file (as Airflow's DAG processor imports it) "
        "with the structure recorded in BUNDLE; exit 1 on any difference",
    )
    parser.set_defaults(handler=_main)


def _check_dag_file(bundle: Path, dag_file: Path) -> tuple[list[str], list[str]]:
    """Lines to print and the differences between ``dag_file`` and the packed ``bundle``."""
    from ..errors import UsageError
    from .drift import differences
    from .packer import _introspect
    from .vendor import PackError

    if not dag_file.is_file():
        raise UsageError(f"--dag-file {dag_file}: no such file")
    finding = examine(bundle)
    if not finding.usable:
        return [_describe(finding)], [f"{bundle} is not a usable bundle"]
    if not finding.fingerprints:
        return [], [
            f"{bundle} records no DAG fingerprints (packed by an older trio-coord): repack it"
        ]
    try:
        info = _introspect(str(dag_file), dag_file.resolve().parent)
    except PackError as exc:
        return [], [f"the DAG file {dag_file} does not import: {exc}"]
    found = differences(finding.fingerprints, info.get("fingerprints") or {})
    head = f"{dag_file} against {bundle}:"
    if not found:
        return [f"{head} the same DAGs, tasks, dependencies and queues"], []
    return [head, *(f"  {line}" for line in found)], found


def _main(ns: argparse.Namespace) -> int:
    from ..errors import UsageError

    bundles: list[Path] = ns.bundles
    roots: list[Path] = ns.root
    if not bundles and not roots:
        raise UsageError("give at least one BUNDLE or --root DIR")
    if ns.dag_file is not None:
        if len(bundles) != 1 or roots:
            raise UsageError("--dag-file compares one DAG file with exactly one BUNDLE")
        lines, drifted = _check_dag_file(bundles[0], ns.dag_file)
        sys.stdout.write("\n".join(lines + ([] if lines else drifted)) + "\n")
        if drifted:
            sys.stdout.write(f"{len(drifted)} difference(s) found\n")
        return 1 if drifted else 0
    for root in roots:
        # A missing root is a typo, not "nothing to report": exit before walking.
        if not root.exists():
            raise UsageError(
                f"--root {root} does not exist: give the directory listed in the workers' "
                "executables_root"
            )
        if not root.is_dir():
            raise UsageError(f"--root {root} is not a directory: check BUNDLE files without --root")
    problems = 0
    out: list[str] = []
    for path in bundles:
        finding = examine(path)
        out.append(_describe(finding))
        if not finding.usable:
            problems += 1
        elif ns.dag_id is not None and not roots and ns.dag_id not in finding.dags:
            out.append(f"  dag {ns.dag_id!r} is not declared by {path}")
            problems += 1
    if roots:
        discovery = discover(roots)
        where = os.pathsep.join(str(r.resolve()) for r in roots)
        out.append(f"walking {where} in the coordinator's order:")
        bundles_seen = 0
        for finding in discovery.findings:
            if finding.status == "ignored" and "not executable" not in finding.reason:
                continue
            bundles_seen += 1
            if not finding.usable:
                problems += 1
            out.append("  " + _describe(finding).replace("\n", "\n  "))
        if not bundles_seen:
            out.append(
                f"no bundles under {where}: pack one there with trio-coord pack FILE.py -o DIR/NAME"
            )
            problems += 1
        for dag_id, found in sorted(discovery.conflicts().items()):
            usable = [f for f in found if f.usable]
            problems += 1
            out.append(
                f"conflict: dag {dag_id!r} is declared by {len(usable)} bundles; 1.3.2 runs the first one "
                "in directory order, which can change: keep exactly one"
            )
            out += [
                f"  {'runs' if i == 0 else 'never used'}: {f.path}" for i, f in enumerate(usable)
            ]
        if ns.dag_id is not None:
            picked = discovery.pick(ns.dag_id)
            if picked is None:
                rejected = [
                    f for f in discovery.by_dag.get(ns.dag_id, []) if f.status == "rejected"
                ]
                reason = (
                    f"no bundle with a usable supervisor_schema_version ({'; '.join(f'{f.path}: {f.reason}' for f in rejected)})"
                    if rejected
                    else "no bundle declares it"
                )
                out.append(f"dag {ns.dag_id!r}: not found in {where}: {reason}")
                problems += 1
            else:
                out.append(f"dag {ns.dag_id!r}: the coordinator runs {picked.path}")
                for path in bundles:
                    if path.resolve() != picked.path:
                        out.append(f"  but not {path.resolve()}: it is not the one picked")
                        problems += 1
    sys.stdout.write("\n".join(out) + "\n")
    if problems:
        sys.stdout.write(f"{problems} problem(s) found\n")
    return 1 if problems else 0
