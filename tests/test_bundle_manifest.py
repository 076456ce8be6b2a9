"""The manifest YAML and the metadata documents: quoting, order, and what yaml.safe_load reads back."""

from __future__ import annotations

import json

import yaml
from hypothesis import given
from hypothesis import strategies as st

from trio_coord import Bundle, __version__
from trio_coord.bundle import manifest

HOSTILE_IDS = [
    "123",
    "1.0",
    "true",
    "null",
    "2026-01-01",
    "yes",
    "off",
    "0x1F",
    "1e3",
    "~",
    ".inf",
    "-",
]
ids = st.from_regex(r"\A[A-Za-z0-9_.\-]{1,20}\Z") | st.sampled_from(HOSTILE_IDS)


def _manifest(dags: dict[str, list[str]], **kw: object) -> dict[str, object]:
    spec = manifest.spec_document(dags)
    args: dict[str, object] = {
        "source": "tasks.py",
        "sources": [{"path": "tasks.py", "offset": 0, "length": 10, "sha256": "ab" * 32}],
        "bundle_name": "b",
        "bundle_version": "1.0",
        "digests": {"integrity": "00" * 32, "cache": "11" * 32},
    }
    args.update(kw)
    return manifest.build_manifest(spec, **args)  # type: ignore[arg-type]


@given(st.dictionaries(ids, st.lists(ids, max_size=4, unique=True), min_size=1, max_size=5))
def test_every_id_reads_back_as_the_same_string(dags: dict[str, list[str]]) -> None:
    """Dag ids and task ids that YAML 1.1 would type (123, true, dates) come back as str, unchanged."""
    loaded = yaml.safe_load(manifest.render_yaml(_manifest(dags)))
    assert loaded["dags"] == {d: {"tasks": dags[d]} for d in dags}
    assert all(type(k) is str for k in loaded["dags"])
    assert all(type(t) is str for d in loaded["dags"].values() for t in d["tasks"])


@given(st.text(max_size=40))
def test_any_string_value_survives_yaml(value: str) -> None:
    """yaml_quote gives a scalar PyYAML reads back exactly, control and separator characters included."""
    assert yaml.safe_load(f"k: {manifest.yaml_quote(value)}\n") == {"k": value}


def test_schema_and_metadata_versions_stay_strings() -> None:
    """supervisor_schema_version "2026-06-16" and metadata version "1.0" are quoted (not a date / float)."""
    text = manifest.render_yaml(_manifest({"d": ["t"]}))
    assert 'supervisor_schema_version: "2026-06-16"' in text
    assert 'airflow_bundle_metadata_version: "1.0"' in text
    loaded = yaml.safe_load(text)
    assert loaded["sdk"] == {
        "language": "python",
        "version": __version__,
        "supervisor_schema_version": "2026-06-16",
    }
    assert loaded["airflow_bundle_metadata_version"] == "1.0"


def test_key_order_and_layout_are_the_normative_ones() -> None:
    """Top-level keys come in §4.4 order, two-space indent, dag keys sorted, one trailing newline."""
    text = manifest.render_yaml(_manifest({"zeta": ["b", "a"], "alpha": ["x"]}))
    tops = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ")]
    assert tops == [
        "airflow_bundle_metadata_version",
        "sdk",
        "source",
        "dags",
        "entrypoint_path",
        "sources",
        "bundle",
        "digests",
    ]
    assert text.index('"alpha":') < text.index('"zeta":')
    assert '    tasks:\n      - "b"\n      - "a"\n' in text  # registration order kept
    assert text.endswith("\n") and not text.endswith("\n\n") and "\t" not in text


def test_empty_task_list_and_sources_render_as_flow_empties() -> None:
    """A dag without tasks is written "tasks: []", which reads back as an empty list."""
    text = manifest.render_yaml(_manifest({"d": []}, sources=[]))
    assert "tasks: []" in text and "entrypoint_path" not in text
    assert yaml.safe_load(text)["dags"] == {"d": {"tasks": []}}


def test_dump_spec_document_shape_and_json_layout() -> None:
    """bundle_spec walks the registry: 4-space JSON, keys in §6.2 order, dag ids sorted, tasks in order."""
    b = Bundle("b")
    z = b.dag("z")
    a = b.dag("a")
    z.task(task_id="t2")(lambda: None)
    z.task(task_id="t1")(lambda: None)
    a.task(task_id="only")(lambda: None)
    text = manifest.render_json(manifest.bundle_spec(b))
    doc = json.loads(text)
    assert list(doc) == ["airflow_bundle_metadata_version", "sdk", "dags"]
    assert list(doc["sdk"]) == ["language", "version", "supervisor_schema_version"]
    assert list(doc["dags"]) == ["a", "z"] and doc["dags"]["z"] == {"tasks": ["t2", "t1"]}
    assert text.startswith('{\n    "airflow_bundle_metadata_version": "1.0",\n') and text.endswith(
        "}\n"
    )


def test_cache_digest_covers_all_three_regions() -> None:
    """digests.cache changes when the binary hash, the source or the digest-less manifest changes."""
    base = manifest.cache_digest(b"\0" * 32, b"src", b"man")
    assert len(base) == 64
    assert base != manifest.cache_digest(b"\1" * 32, b"src", b"man")
    assert base != manifest.cache_digest(b"\0" * 32, b"src2", b"man")
    assert base != manifest.cache_digest(b"\0" * 32, b"src", b"man2")
