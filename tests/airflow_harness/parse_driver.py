"""Drive airflow-core 3.3.2's own ``DagFileProcessorProcess`` against a trio-coord runtime.

Run as ``python parse_driver.py SCENARIO_JSON`` in a fresh interpreter (``parse_harness.py``
does it). Airflow 3.3.2 always forks its own Python parse child; the only thing replaced
here is that child's body: instead of parsing, it relays between the processor's socket
and a runtime started as ``RUNTIME... --comm=127.0.0.1:P --logs=127.0.0.1:Q``. Sending the
request, decoding the result with the processor's own type adapter, writing the
acknowledgement and collecting the exit code are all Airflow's code.

Scenario keys: ``runtime`` (argv), ``file``, ``bundle_path``, ``bundle_name``,
``workdir``, ``timeout``. Prints ``@@REPORT@@`` and one JSON line: the exit code, the
result as the processor decoded it, each DAG after ``DagSerialization.from_dict``, and
the runtime's log records.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock


def relay_target(runtime: list[str], log_path: str, connect_timeout: float) -> Any:
    """The body of the processor's forked child: start the runtime, relay both channels."""

    def relay() -> None:
        processor = socket.socket(fileno=os.dup(0))
        comm_listener = socket.create_server(("127.0.0.1", 0))
        logs_listener = socket.create_server(("127.0.0.1", 0))
        child = subprocess.Popen(
            [
                *runtime,
                f"--comm=127.0.0.1:{comm_listener.getsockname()[1]}",
                f"--logs=127.0.0.1:{logs_listener.getsockname()[1]}",
            ],
            stdin=subprocess.DEVNULL,
        )
        comm_listener.settimeout(connect_timeout)
        logs_listener.settimeout(connect_timeout)
        try:
            comm, _ = comm_listener.accept()
            logs, _ = logs_listener.accept()
        except OSError:
            child.kill()
            os._exit(child.wait())
        peers = {processor: comm, comm: processor}
        sel = selectors.DefaultSelector()
        for sock in (processor, comm, logs):
            sel.register(sock, selectors.EVENT_READ)
        open_socks = {processor, comm, logs}
        with open(log_path, "ab") as log_file:
            deadline = time.monotonic() + 600
            while comm in open_socks or logs in open_socks:
                if time.monotonic() > deadline:
                    break
                for key, _ in sel.select(timeout=0.5):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    data = sock.recv(65536)
                    if not data:
                        sel.unregister(sock)
                        open_socks.discard(sock)
                        if sock is comm:
                            processor.shutdown(socket.SHUT_WR)
                    elif sock is logs:
                        log_file.write(data)
                        log_file.flush()
                    elif peers[sock] in open_socks:
                        peers[sock].sendall(data)
        os._exit(child.wait())

    return relay


def main(scenario: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(scenario["workdir"])
    os.environ["AIRFLOW_HOME"] = str(workdir / "airflow-home")
    import structlog
    from airflow.dag_processing.processor import DagFileProcessorProcess
    from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

    log_path = workdir / "runtime-logs.ndjson"
    bundle_path = Path(scenario["bundle_path"])
    file = Path(scenario["file"])
    with open(workdir / "processor.log", "wb") as processor_log:
        proc = DagFileProcessorProcess.start(
            id=uuid.uuid4(),
            path=str(file),
            bundle_path=bundle_path,
            bundle_name=scenario.get("bundle_name", "trio-bundle"),
            dag_file_rel_path=str(file.relative_to(bundle_path)),
            callbacks=[],
            target=relay_target(scenario["runtime"], str(log_path), 30.0),
            client=mock.MagicMock(),
            logger=structlog.get_logger(),
            logger_filehandle=processor_log,
        )
        started = time.monotonic()
        while not proc.is_ready and time.monotonic() - started < scenario.get("timeout", 90):
            proc._service_subprocess(0.2)
        ready = proc.is_ready
        if not ready:
            proc.kill()
    result = proc.parsing_result
    dags: dict[str, Any] = {}
    if result is not None:
        for entry in result.serialized_dags:
            lazy = LazyDeserializedDAG(data=entry.data)
            dag = DagSerialization.from_dict(json.loads(json.dumps(entry.data)))
            dags[dag.dag_id] = {
                "hash": lazy.hash,
                "tasks": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
                "queues": {t.task_id: t.queue for t in dag.tasks},
            }
    records = []
    if log_path.exists():
        for line in log_path.read_bytes().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return {
        "ready": ready,
        "exit_code": proc._exit_code,
        "result": None if result is None else result.model_dump(mode="json"),
        "dags": dags,
        "runtime_log": records,
    }


if __name__ == "__main__":
    report = main(json.loads(sys.argv[1]))
    sys.stdout.write("@@REPORT@@" + json.dumps(report) + "\n")
    sys.stdout.flush()
    os._exit(0)
