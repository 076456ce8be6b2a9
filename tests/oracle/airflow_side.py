"""The Airflow side of the oracle: run with an interpreter that has airflow-core 3.3.2.

``python airflow_side.py REQUEST.json RESPONSE.json``. It never imports trio-coord itself
(an oracle venv need not have it); only the bundle files handed to ``dagbag`` do, through
PYTHONPATH, exactly as in a DAG processor. Everything asked for is answered in one run,
because importing Airflow costs seconds.

Request keys (all optional):
  validate     {name: document}: levels L1 schema, L2 task lint, L3 DagSerialization.from_dict,
               L4 LazyDeserializedDAG, W the documents as a DagFileParsingResult through the
               DAG processor's own decoder; plus "load" (fill_config_defaults and
               validate_serialized_dag) where this airflow-core has them.
  conformance  path of tests/data/conformance_dags.json: each ungated case built with
               airflow.sdk (a no-op BaseOperator) and serialized by DagSerialization.to_dict.
  dagbag       [bundle file paths]: Airflow's DagBag imports each (the export route) and
               serializes every DAG it finds.
  db           {"bundle_name": str, "bundle_path": str}: also persist the validated documents
               with update_dag_parsing_results_in_db into a throw-away SQLite metadata DB.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$datetime"}:
            return datetime.datetime.fromisoformat(value["$datetime"])
        if set(value) == {"$timedelta"}:
            return datetime.timedelta(seconds=value["$timedelta"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def build_conformance(path: str) -> dict[str, Any]:
    from airflow.sdk import DAG, BaseOperator, TaskGroup
    from airflow.serialization.serialized_objects import DagSerialization

    class Noop(BaseOperator):
        def execute(self, context: Any) -> None:
            pass

    docs: dict[str, Any] = {}
    for case in json.loads(Path(path).read_text())["cases"]:
        if case.get("requires"):
            continue
        with DAG(case["dag_id"], **_decode(case.get("spec", {}))) as dag:
            nodes: dict[str, Any] = {}
            for g in case.get("groups", []):
                parent, _, local = g["id"].rpartition(".")
                nodes[g["id"]] = TaskGroup(
                    local, parent_group=nodes.get(parent), dag=dag, **_decode(g.get("spec", {}))
                )
            for t in case["tasks"]:
                group = nodes.get(t.get("group", ""))
                op = Noop(task_id=t["id"], task_group=group, dag=dag, **_decode(t.get("spec", {})))
                nodes[op.task_id] = op
                for up in t.get("upstream", []):
                    nodes[up] >> op
            for edge in case.get("order_edges", []):
                nodes[edge[0]] >> nodes[edge[1]]
        docs[case["dag_id"]] = DagSerialization.to_dict(dag)
    return docs


def run_dagbag(paths: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    docs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for p in paths:
        bag = DagBag(dag_folder=p, bundle_path=Path(p).parent)
        errors.update({str(k): str(v) for k, v in bag.import_errors.items()})
        for dag in bag.dags.values():
            docs[dag.dag_id] = DagSerialization.to_dict(dag)
    return docs, errors


def _as_linted(var: dict[str, Any]) -> dict[str, Any]:
    """A mapped ``@task`` keeps its expand input under ``op_kwargs_expand_input`` (named by
    ``_expand_input_attr``); the schema's dependencies name only ``expand_input``, so
    Airflow's own document of a mapped @task would fail them. Lint it under that name."""
    attr = var.get("_expand_input_attr")
    if attr and attr != "expand_input" and attr in var and "expand_input" not in var:
        return {**var, "expand_input": var[attr]}
    return var


def validate(docs: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    import jsonschema
    from airflow.serialization.json_schema import load_dag_schema_dict
    from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

    schema = load_dag_schema_dict()
    # Airflow never checks tasks against definitions/operator (the "tasks" array schema uses
    # additionalProperties, which arrays ignore); lint them with the identity keys required.
    operator = copy.deepcopy(schema["definitions"]["operator"])
    operator["required"] = ["task_id", "task_type", "_task_module"]
    operator["properties"].pop("_operator_extra_links", None)
    lint = jsonschema.Draft7Validator({"definitions": schema["definitions"], **operator})
    fill = getattr(DagSerialization, "fill_config_defaults", None)
    check = getattr(DagSerialization, "validate_serialized_dag", None)
    out: dict[str, Any] = {}
    lazies = []
    for name, doc in docs.items():
        level = "L1"
        try:
            DagSerialization.validate_schema(doc)
            level = "L2"
            for task in doc["dag"]["tasks"]:
                if task.get("__type") != "operator":
                    raise ValueError(f"task entry is not an operator: {task!r:.80}")
                lint.validate(_as_linted(task["__var"]))
            level = "L3"
            dag = DagSerialization.from_dict(copy.deepcopy(doc))
            level = "L4"
            lazy = LazyDeserializedDAG(data=doc)
            summary = {
                "timetable": type(lazy.timetable).__name__,
                "hash": lazy.hash,
                "owner": lazy.owner,
                "limits": lazy.has_task_concurrency_limits,
                "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
            }
            level = "load"
            if fill is not None and check is not None:
                check(fill(copy.deepcopy(doc)))
            lazies.append(lazy)
            out[name] = {"ok": True, "summary": summary, "load_checked": fill is not None}
        except Exception as exc:
            cause = exc.__cause__ or exc
            out[name] = {
                "ok": False,
                "level": level,
                "error": f"{type(cause).__name__}: {cause}"[:800],
            }
    return out, lazies


def wire(docs: dict[str, Any]) -> dict[str, Any]:
    import msgspec
    from airflow.dag_processing.processor import DagFileParsingResult, DagFileProcessorProcess
    from airflow.sdk.execution_time.comms import _RequestFrame

    first = next(iter(docs.values()), {"dag": {}})
    body = {
        "type": "DagFileParsingResult",
        "fileloc": first["dag"].get("fileloc", ""),
        "serialized_dags": [{"data": d} for d in docs.values()],
        "import_errors": {},
        "warnings": [],
    }
    try:
        frame = msgspec.msgpack.Decoder(_RequestFrame).decode(msgspec.msgpack.encode([0, body]))
        decoded = DagFileProcessorProcess.decoder.validate_python(frame.body)
        ok = isinstance(decoded, DagFileParsingResult) and len(decoded.serialized_dags) == len(docs)
        return {"ok": ok, "error": "" if ok else type(decoded).__name__}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:800]}


def persist(lazies: list[Any], bundle_name: str) -> dict[str, Any]:
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.get(DagBundleModel, bundle_name) is None:
            session.add(DagBundleModel(name=bundle_name))
    errors: dict[Any, Any] = {}
    with create_session() as session:
        update_dag_parsing_results_in_db(
            bundle_name=bundle_name,
            bundle_version=None,
            dags=lazies,
            import_errors=errors,
            parse_duration=0.0,
            warnings=set(),
            session=session,
        )
    stored: dict[str, Any] = {}
    with create_session() as session:
        for lazy in lazies:
            dag_id = lazy.data["dag"]["dag_id"]
            model = session.get(DagModel, dag_id)
            row = SerializedDagModel.get(dag_id, session=session)
            stored[dag_id] = (
                None
                if model is None or row is None
                else {
                    "relative_fileloc": model.relative_fileloc,
                    "tags": sorted(t.name for t in model.tags),
                    "owners": model.owners,
                    "max_active_runs": model.max_active_runs,
                    "next_dagrun": model.next_dagrun.isoformat() if model.next_dagrun else None,
                    "tasks": sorted(row.dag.task_dict),
                    "queues": sorted({t.queue for t in row.dag.tasks}),
                }
            )
    return {"errors": {str(k): str(v) for k, v in errors.items()}, "stored": stored}


def prepare_db(home: str, bundle_name: str, bundle_path: str) -> None:
    """Point Airflow at a fresh SQLite DB (before it is imported) and migrate it."""
    os.environ.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(
            [
                {
                    "name": bundle_name,
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": bundle_path},
                }
            ]
        ),
    )
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=600)


def main(request_path: str, response_path: str) -> int:
    request = json.loads(Path(request_path).read_text())
    home = tempfile.mkdtemp(prefix="tc-oracle-home-")
    os.environ["AIRFLOW_HOME"] = home
    response: dict[str, Any] = {}
    try:
        if "db" in request:
            prepare_db(home, request["db"]["bundle_name"], request["db"]["bundle_path"])
        from airflow.serialization.json_schema import load_dag_schema_dict

        props = load_dag_schema_dict()["definitions"]["operator"]["properties"]
        response["operator_defaults"] = {
            k: v["default"] for k, v in props.items() if v.get("default") is not None
        }
        if "conformance" in request:
            response["python_docs"] = build_conformance(request["conformance"])
        if "dagbag" in request:
            response["dagbag_docs"], response["dagbag_errors"] = run_dagbag(request["dagbag"])
        docs = request.get("validate", {})
        response["levels"], lazies = validate(docs)
        response["wire"] = wire(docs) if docs else {"ok": True, "error": ""}
        if "db" in request:
            response["db"] = persist(lazies, request["db"]["bundle_name"])
    except Exception:
        response["crash"] = traceback.format_exc()[-4000:]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    Path(response_path).write_text(json.dumps(response, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
