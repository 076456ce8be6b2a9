"""The parse workload under airflow-core 3.3.2's own DagFileProcessorProcess (real manager side).

Each test starts the real processor in a fresh interpreter (tests/airflow_harness/
parse_driver.py); only the processor's forked child is replaced by a relay to the
runtime, so the request, the decoding of the result, the acknowledgement and the exit
code are Airflow's. The DAGs are then loaded with Airflow's ``DagSerialization.from_dict``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from airflow_harness.parse_harness import ParseReport, processor_parse
from bundle_helpers import packed, write_bundle
from test_dags_cli import FLOWS

pytestmark = pytest.mark.timeout(300)


#: One good DAG, one whose schedule was replaced after declaration by something no
#: serializer can write.
HALF_BROKEN = """
import trio_coord

bundle = trio_coord.Bundle("half", version="1.0.0")
good = bundle.dag("good")

@good.task
def ok():
    pass

bad = bundle.dag("bad")

@bad.task
def never():
    pass

bad.schedule = object()
"""

UNIMPORTABLE = """
import trio_coord

bundle = trio_coord.Bundle("broken", version="1.0.0")
d = bundle.dag("d")

@d.task
def t():
    pass

1 / 0
"""


def serve(file: Path) -> list[str]:
    return [sys.executable, "-m", "trio_coord", "serve", "--bundle", str(file)]


def assert_acknowledged(report: ParseReport) -> None:
    assert report.ready and report.exit_code == 0, report.stderr[-3000:]
    assert "the DAG processor acknowledged the result" in report.events
    assert not any("did not acknowledge" in e for e in report.events)


def test_serve_answers_the_real_processor(tmp_path: Path) -> None:
    """trio-coord serve's result is decoded and stored by 3.3.2's processor, loads in Airflow, and the ack is read."""
    file = write_bundle(tmp_path / "dags", "flows", body=FLOWS)
    report = processor_parse(serve(file), file, file.parent)
    assert_acknowledged(report)
    assert report.result is not None
    assert report.result["fileloc"] == str(file)
    assert not report.result["import_errors"]
    assert report.dags["etl"]["tasks"] == {"extract": [], "load": ["extract"]}
    assert report.dags["report"]["queues"] == {"mail": "trio-reports"}


def test_packed_bundle_answers_the_real_processor(tmp_path: Path) -> None:
    """A packed bundle executable answers the real processor the same way, through the same code."""
    file = write_bundle(tmp_path / "src", "flows", body=FLOWS)
    bundle = packed(file, "parse-flows")
    report = processor_parse(
        [str(bundle)], file, file.parent, env={"TRIO_COORD_PYTHON": sys.executable}
    )
    assert_acknowledged(report)
    assert sorted(report.dags) == ["etl", "report"]
    assert report.dags["etl"]["tasks"]["load"] == ["extract"]


def test_a_broken_dag_is_an_import_error_and_the_other_is_stored(tmp_path: Path) -> None:
    """The DAG that cannot be serialized is an import error keyed by the file's relative path; the good one loads."""
    file = write_bundle(tmp_path / "dags" / "sub", "half", body=HALF_BROKEN)
    report = processor_parse(serve(file), file, tmp_path / "dags")
    assert_acknowledged(report)
    assert report.result is not None
    assert list(report.dags) == ["good"]
    errors = report.result["import_errors"]
    assert list(errors) == ["sub/half.py"]
    assert errors["sub/half.py"].startswith('Dag "bad": ')


def test_a_bundle_that_cannot_import_is_an_import_error(tmp_path: Path) -> None:
    """A bundle whose module raises is reported as an import error with the user's traceback, not a bare failure."""
    file = write_bundle(tmp_path / "dags", "broken", body=UNIMPORTABLE)
    report = processor_parse(serve(file), file, file.parent)
    assert_acknowledged(report)
    assert report.result is not None
    assert report.result["serialized_dags"] == []
    text = report.result["import_errors"]["broken.py"]
    assert "ZeroDivisionError" in text and "1 / 0" in text
