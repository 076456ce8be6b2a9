"""Dynamic task mapping: declaration, Airflow's element order, the real supervisor, export, local run."""

from __future__ import annotations

import datetime
import itertools
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from airflow_harness.harness import HERE, supervise
from bundle_helpers import run_airflow_script

from trio_coord import Bundle
from trio_coord.authoring.mapping import TaskMapping, has_mapped_dependants
from trio_coord.errors import UsageError
from trio_coord.runtime.mapping import (
    MappingError,
    _dict_of_lists,
    _list_of_dicts,
    element_indexes,
    mapped_length,
    render_map_index,
)

BUNDLE = f"{HERE / 'bundle_mapping.py'}:bundle"
BUNDLE_FILE = HERE / "bundle_mapping.py"
UTC = datetime.UTC


def _dag() -> Any:
    d = Bundle("m").dag("d")

    @d.task
    def up() -> list[int]:
        return [1, 2]

    @d.task
    def f(a: int, b: int = 0, context: Any = None) -> int:
        return a + b

    return d


# -- declaration ---------------------------------------------------------------------------


def test_expand_records_the_mapping_wires_the_upstream_and_returns_the_output() -> None:
    """partial().expand() stores a TaskMapping, adds the XComArg's edge and returns f's output."""
    d = _dag()
    f, up = d.tasks["f"], d.tasks["up"]
    out = f.partial(b=3).expand(a=up.output)
    assert isinstance(f.mapping, TaskMapping)
    assert f.mapping.kind == "dict-of-lists" and f.mapping.partial == {"b": 3}
    assert f.mapping.expand == {"a": up.output}
    assert f.is_mapped and f.upstream == ["up"]
    assert out.task is f and out.key == "return_value"
    assert has_mapped_dependants(up) and not has_mapped_dependants(f)
    assert d.events[-1] == ("expand", "f")


def test_expand_kwargs_records_a_list_of_dicts_mapping() -> None:
    """expand_kwargs takes a list of dicts (strict) or an XComArg."""
    d = _dag()
    d.tasks["f"].expand_kwargs([{"a": 1}, {"a": 2, "b": 5}])
    m = d.tasks["f"].mapping
    assert m.kind == "list-of-dicts" and m.strict and m.kwargs == [{"a": 1}, {"a": 2, "b": 5}]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda f, up: f.expand(b=[1]), "parameter 'a' of f() has no default"),
        (lambda f, up: f.expand(zz=[1], a=[1]), "f() has no parameter 'zz'"),
        (lambda f, up: f.partial(zz=1), "f() has no parameter 'zz'"),
        (lambda f, up: f.partial(a=1).expand(a=[2]), "'a' is given to partial() already"),
        (lambda f, up: f.expand(a=[]), "an empty list would map to no instance"),
        (lambda f, up: f.expand(a={}), "an empty dict would map to no instance"),
        (lambda f, up: f.expand(a="abc"), "expected a list, a dict or a task's output"),
        (lambda f, up: f.expand(a=3), "got int"),
        (lambda f, up: f.expand(a=[1], context=[1]), "cannot map or fix 'context'"),
        (lambda f, up: f.partial(context=1), "cannot map or fix 'context'"),
        (lambda f, up: f.expand(), "no arguments to expand against"),
        (lambda f, up: f.expand(a=up.output["k"]), "cannot map over XCom with custom key 'k'"),
        (lambda f, up: f.expand(a=f.output), "cannot expand over its own output"),
        (lambda f, up: f.expand(a=[object()]), "must be JSON data"),
        (lambda f, up: f.partial(b=up.output), "takes only literal constants"),
        (lambda f, up: f.expand_kwargs({"a": 1}), "expected a list of dicts"),
        (lambda f, up: f.expand_kwargs([]), "an empty list would map to no instance"),
        (lambda f, up: f.expand_kwargs([{"b": 1}]), "parameter 'a' of f() has no default"),
        (lambda f, up: f.partial(b=1).expand_kwargs([{"a": 1, "b": 2}]), "repeats partial()"),
        (lambda f, up: f.expand_kwargs([{"a": up.output}]), "literal values inside"),
    ],
)
def test_bad_declarations_are_usage_errors(call: Any, fragment: str) -> None:
    """Each mistake Airflow refuses is a UsageError naming what is wrong."""
    d = _dag()
    with pytest.raises(UsageError) as err:
        call(d.tasks["f"], d.tasks["up"])
    assert fragment in str(err.value)
    assert d.tasks["f"].mapping is None


def test_a_task_is_expanded_once() -> None:
    """Expanding twice is refused (in Airflow each expand is a new task)."""
    d = _dag()
    d.tasks["f"].expand(a=[1])
    with pytest.raises(UsageError, match="already mapped"):
        d.tasks["f"].expand(a=[2])


def test_expand_after_wiring_is_refused() -> None:
    """A mapped task exists for Airflow once expanded: wiring it first is refused."""
    d = _dag()
    d.tasks["up"] >> d.tasks["f"]
    with pytest.raises(UsageError, match="before wiring it"):
        d.tasks["f"].expand(a=[1])


def test_trigger_rule_always_cannot_map_over_an_output() -> None:
    """As in Airflow, trigger_rule 'always' and task-generated mapping do not mix."""
    d = _dag()

    @d.task(trigger_rule="always")
    def g(a: int) -> None:
        pass

    with pytest.raises(UsageError, match="trigger_rule 'always'"):
        g.expand(a=d.tasks["up"].output)
    g.expand(a=[1, 2])  # literal inputs are fine


@pytest.mark.parametrize("template", ["{{ a }}", "{% if a %}x{% endif %}"])
def test_jinja_map_index_templates_are_refused_when_expanding(template: str) -> None:
    """trio-coord has no Jinja: expanding a task with a Jinja label is a UsageError."""
    d = Bundle("m").dag("d")

    @d.task(map_index_template=template)
    def f(a: int = 0) -> None:
        pass

    with pytest.raises(UsageError, match="is Jinja, which trio-coord does not render"):
        f.expand(a=[1])
    assert f.mapping is None


@pytest.mark.parametrize("template", ["", 3])
def test_map_index_template_is_text_or_a_function(template: Any) -> None:
    """A label template that is neither text nor callable is refused where it is written."""
    d = Bundle("m").dag("d")
    with pytest.raises(UsageError, match=r"str\.format template"):
        d.task(task_id="t", map_index_template=template)(lambda: None)


def test_a_label_function_is_refused_in_default_args() -> None:
    """default_args are written into the DAG document, so a label there must be text."""
    with pytest.raises(UsageError, match="default_args map_index_template must be text"):
        Bundle("m").dag("d", default_args={"map_index_template": lambda **kw: "x"})


# -- the element of a map index, compared with airflow.sdk ----------------------------


class _NoClient:
    """Literal inputs need no supervisor: any request is a test failure."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected client call {name}")


def _ours(task: Any, index: int) -> dict[str, Any]:
    fn = _dict_of_lists if task.mapping.kind == "dict-of-lists" else _list_of_dicts
    return trio.run(fn, task, _NoClient(), index)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "inputs",
    [
        {"a": [1, 2, 3]},
        {"a": [1, 2], "b": ["x", "y", "z"]},
        {"b": ["x", "y", "z"], "a": [1, 2]},
        {"a": [1, 2], "b": {"k1": 1, "k2": 2}, "c": [True, False, None]},
    ],
)
def test_cartesian_product_order_matches_airflow(inputs: dict[str, Any]) -> None:
    """Each map index gets the same element as airflow.sdk's DictOfListsExpandInput.resolve."""
    from airflow.sdk.definitions._internal.expandinput import DictOfListsExpandInput

    d = Bundle("m").dag("d")

    @d.task
    def f(a: Any = None, b: Any = None, c: Any = None) -> None:
        pass

    f.expand(**inputs)
    total = 1
    for v in inputs.values():
        total *= len(v)
    theirs_input = DictOfListsExpandInput(inputs)
    for i in range(total):
        ti = SimpleNamespace(map_index=i, _upstream_map_indexes=None)
        theirs, _ = theirs_input.resolve({"ti": ti})
        assert _ours(f, i) == dict(theirs), i
    with pytest.raises(MappingError, match=f"map index {total} is past"):
        _ours(f, total)


def test_list_of_dicts_matches_airflow() -> None:
    """expand_kwargs instance i gets dict i, as airflow.sdk's ListOfDictsExpandInput."""
    from airflow.sdk.definitions._internal.expandinput import ListOfDictsExpandInput

    d = _dag()
    value = [{"a": 1}, {"a": 2, "b": 5}]
    d.tasks["f"].expand_kwargs(value)
    for i in range(2):
        theirs, _ = ListOfDictsExpandInput(value).resolve({"ti": SimpleNamespace(map_index=i)})
        assert _ours(d.tasks["f"], i) == dict(theirs)


def test_element_indexes_is_mixed_radix_with_the_last_input_fastest() -> None:
    """element_indexes enumerates itertools.product order, and refuses past the end."""
    lengths = [2, 3, 2]
    expected = list(itertools.product(*(range(n) for n in lengths)))
    assert [tuple(element_indexes(lengths, i)) for i in range(12)] == expected
    with pytest.raises(MappingError, match="past the 12"):
        element_indexes(lengths, 12)


def test_render_map_index_formats_calls_and_explains_failures() -> None:
    """A template is str.format-ed with the arguments, a function called with them."""
    assert render_map_index("{a}-{b}", {"a": 1, "b": "x"}) == "1-x"
    assert render_map_index(lambda a, b: f"{b}{a}", {"a": 1, "b": "x"}) == "x1"
    assert render_map_index("{a}", {"a": ""}) is None  # the API refuses an empty label
    with pytest.raises(MappingError, match=r"KeyError.*the arguments are: a"):
        render_map_index("{nope}", {"a": 1})


def test_mapped_length_follows_airflows_push_rules() -> None:
    """An upstream of a mapped task pushes len(value); None or a scalar fails like Airflow."""
    d = _dag()
    up, f = d.tasks["up"], d.tasks["f"]
    assert mapped_length(up, [1, 2]) is None  # nothing maps over it yet
    f.expand(a=up.output)
    assert mapped_length(up, [1, 2, 3]) == 3
    assert mapped_length(up, {"k": 1}) == 1
    assert mapped_length(f, 5) is None  # a mapped task's own value is per instance
    with pytest.raises(MappingError, match="did not push XCom for task mapping"):
        mapped_length(up, None)
    with pytest.raises(MappingError, match="unmappable return type 'str'"):
        mapped_length(up, "abc")


# -- the real 1.3.2 supervisor ---------------------------------------------------------


def _xcom_posts(report: Any, task_id: str) -> list[dict[str, Any]]:
    return [c for c in report.api("POST", f"/{task_id}/return_value")]


def test_upstream_pushes_its_list_with_mapped_length() -> None:
    """The upstream's POST carries mapped_length=len(value) as the real runner sends it."""
    r = supervise("make", bundle=BUNDLE, dag_id="d1")
    assert r.final_state == "success"
    (post,) = _xcom_posts(r, "make")
    assert post["params"] == {"mapped_length": "3"}
    assert post["body"] == [1, 2, 3]


@pytest.mark.parametrize("index", [0, 2])
def test_each_mapped_try_reads_its_element_and_reports_its_label(index: int) -> None:
    """Try N pulls the upstream list unmapped, succeeds with x*factor and label x=<element>."""
    r = supervise(
        "double",
        bundle=BUNDLE,
        dag_id="d1",
        map_index=index,
        xcoms={"d1/r1/make/return_value": [4, 5, 6]},
    )
    x = [4, 5, 6][index]
    assert r.final_state == "success", r.log_text
    get = r.api("GET", "/xcoms/d1/r1/make/return_value")
    assert len(get) == 1 and get[0]["params"] == {}  # unmapped pull: no map_index sent
    assert [c["body"] for c in r.api("PATCH", "/rendered-map-index")] == [f"x={x}"]
    (post,) = _xcom_posts(r, "double")
    assert post["params"] == {"map_index": str(index)} and post["body"] == x * 10
    assert r.state_patches[-1]["state"] == "success"
    assert r.state_patches[-1]["rendered_map_index"] == f"x={x}"


def test_expand_kwargs_over_an_output_takes_its_dict() -> None:
    """expand_kwargs over an upstream list pulls it unmapped and calls with dict N (defaults kept)."""
    r = supervise(
        "from_configs",
        bundle=BUNDLE,
        dag_id="d1",
        map_index=1,
        xcoms={"d1/r1/configs/return_value": [{"a": 1}, {"a": 2, "b": 3}]},
    )
    assert r.final_state == "success", r.log_text
    assert _xcom_posts(r, "from_configs")[0]["body"] == 5
    assert r.state_patches[-1]["rendered_map_index"] == "2+3"
    r = supervise("configs", bundle=BUNDLE, dag_id="d1")
    assert _xcom_posts(r, "configs")[0]["params"] == {"mapped_length": "2"}


def test_mapping_over_a_mapped_output_reads_one_item() -> None:
    """Expanding over a mapped task's output asks the count and item N, never the whole list."""
    r = supervise(
        "chained",
        bundle=BUNDLE,
        dag_id="d1",
        map_index=1,
        mapped_xcoms={"d1/r1/double/return_value": [10, 20, 30]},
    )
    assert r.final_state == "success", r.log_text
    assert len(r.api("HEAD", "/xcoms/d1/r1/double/return_value")) == 1
    assert len(r.api("GET", "/xcoms/d1/r1/double/return_value/item/1")) == 1
    assert not r.api("GET", "/xcoms/d1/r1/double/return_value")
    assert _xcom_posts(r, "chained")[0]["body"] == 21


def test_reduce_reads_the_lazy_sequence() -> None:
    """A sync downstream sums the mapped output through count + item requests."""
    r = supervise(
        "total",
        bundle=BUNDLE,
        dag_id="d1",
        mapped_xcoms={"d1/r1/double/return_value": [10, 20, 30]},
    )
    assert r.final_state == "success", r.log_text
    assert _xcom_posts(r, "total")[0]["body"] == 60 + 3000
    items = [c["path"].rsplit("/", 1)[1] for c in r.api("GET", "") if "/item/" in c["path"]]
    assert items == ["0", "1", "2", "3"]  # iteration stops at the first missing item


def test_async_reduce_reads_the_awaitable_sequence() -> None:
    """An async downstream awaits len/get and iterates with async for."""
    r = supervise(
        "atotal",
        bundle=BUNDLE,
        dag_id="d1",
        mapped_xcoms={"d1/r1/double/return_value": [10, 20, 30]},
    )
    assert r.final_state == "success", r.log_text
    assert _xcom_posts(r, "atotal")[0]["body"] == [3, 30, 10, 20, 30]


def test_literal_product_and_label_function() -> None:
    """A literal product's instance 4 is (2, 'y'); a label function's result is the label."""
    r = supervise("cart", bundle=BUNDLE, dag_id="d2", map_index=4)
    assert r.final_state == "success"
    assert _xcom_posts(r, "cart")[0]["body"] == "2y"
    assert r.state_patches[-1]["rendered_map_index"] == "2/y"
    assert not r.api("GET", "/xcoms/")  # literal inputs never ask the API
    r = supervise("kw", bundle=BUNDLE, dag_id="d2", map_index=1)
    assert _xcom_posts(r, "kw")[0]["body"] == 5
    assert r.state_patches[-1]["rendered_map_index"] == "0:5"


def test_a_failed_mapped_try_keeps_its_label() -> None:
    """The failed state PATCH at exit carries the label, not null (§6.3)."""
    r = supervise("boom", bundle=BUNDLE, dag_id="d2", map_index=1)
    assert r.final_state == "failed"
    assert r.state_patches[-1]["state"] == "failed"
    assert r.state_patches[-1]["rendered_map_index"] == "8"


@pytest.mark.parametrize(
    ("task_id", "fragment"),
    [("scalar", "unmappable return type 'int'"), ("nothing", "did not push XCom for task mapping")],
)
def test_an_upstream_breaking_the_mapping_contract_fails(task_id: str, fragment: str) -> None:
    """A non-list return (or None) of a task a mapped task expands over fails the try, unpushed."""
    r = supervise(task_id, bundle=BUNDLE, dag_id="d3")
    assert r.final_state == "failed"
    assert not _xcom_posts(r, task_id)
    assert fragment in r.log_text


# -- export route, local run -----------------------------------------------------------

DAGBAG = r"""
import json, os, sys, tempfile
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
sys.modules["trio"] = None  # the DAG processor has no trio
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag
path = Path(sys.argv[1])
bag = DagBag(dag_folder=str(path), bundle_path=path.parent)
out = {"errors": {str(k): v for k, v in bag.import_errors.items()}, "tasks": {}}
for dag in bag.dags.values():
    for t in dag.tasks:
        info = {"mapped": t.is_mapped, "type": type(t).__name__, "upstream": sorted(t.upstream_task_ids)}
        if t.is_mapped:
            xi = t._get_specified_expand_input()
            info["expand"] = sorted(xi.value) if isinstance(xi.value, dict) else type(xi.value).__name__
            info["partial"] = t.partial_kwargs["op_kwargs"]
            info["queue"] = t.partial_kwargs.get("queue")
        out["tasks"][dag.dag_id + "." + t.task_id] = info
print("@@" + json.dumps(out, default=str))
"""


def test_dagbag_sees_mapped_operators_with_the_same_expand_keys(tmp_path: Path) -> None:
    """Airflow's DagBag, without trio, gets a MappedOperator per mapped task, wired to its upstream."""
    dag_file = tmp_path / "mapping_dags.py"
    dag_file.write_text(
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
        "from bundle_mapping import bundle\n"
        "from trio_coord.airflow import export_dags\nexport_dags(bundle, globals())\n"
    )
    out = run_airflow_script(DAGBAG, str(dag_file))
    assert out["errors"] == {}
    tasks = out["tasks"]
    assert tasks["d1.make"] == {"mapped": False, "type": "_StubOperator", "upstream": []}
    double = tasks["d1.double"]
    assert double["mapped"] and double["type"] == "DecoratedMappedOperator"
    assert double["expand"] == ["x"] and double["partial"] == {"factor": 10}
    assert double["upstream"] == ["make"] and double["queue"] == "trio-coord"
    assert tasks["d1.chained"]["expand"] == ["v"] and tasks["d1.chained"]["upstream"] == ["double"]
    assert tasks["d1.total"]["upstream"] == ["double"]
    assert tasks["d2.cart"]["expand"] == ["a", "b"]
    assert tasks["d2.kw"]["expand"] == "list"
    assert tasks["d3.use2"]["expand"] == "PlainXComArg"
    assert tasks["d1.from_configs"]["upstream"] == ["configs"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_coord", "run", str(BUNDLE_FILE), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_local_run_with_map_index_runs_that_instance() -> None:
    """`trio-coord run --map-index 4` runs instance 4 of a literal product, with its label."""
    proc = _run("d2", "cart", "--map-index", "4")
    summary = json.loads(proc.stdout)
    assert summary["state"] == "success" and summary["xcoms"] == {"return_value": "2y"}
    assert summary["rendered_map_index"] == "2/y"


def test_local_run_of_an_xcom_input_needs_the_upstream_value() -> None:
    """Without --xcom the try fails saying how to give it; with it, instance 2 gets element 2."""
    proc = _run("d1", "double", "--map-index", "2")
    summary = json.loads(proc.stdout)
    assert summary["state"] == "failed"
    assert "give it as --xcom make=" in summary["last_error"]
    assert "Traceback" not in proc.stderr
    proc = _run("d1", "double", "--map-index", "2", "--xcom", "make=[4, 5, 6]")
    summary = json.loads(proc.stdout)
    assert summary["state"] == "success" and summary["xcoms"] == {"return_value": 60}


# -- the lazy sequences and the TaskFlow hook, against a fake client --------------------


class _FakeXComs:
    """Answers the XCom requests from ``values`` (a mapped task's pushed values)."""

    def __init__(self, values: list[Any], whole: Any = None) -> None:
        self.values = values
        self.whole = whole
        self.calls: list[tuple[Any, ...]] = []

    def _item(self, index: int, key: str = "return_value", *, task_id: str) -> Any:
        from trio_coord.errors import NotFound

        self.calls.append(("item", task_id, index))
        if not -len(self.values) <= index < len(self.values):
            raise NotFound("no such item")
        return self.values[index]

    def _count(self, key: str = "return_value", *, task_id: str) -> int:
        self.calls.append(("count", task_id))
        return len(self.values)

    def _slice(self, key: str = "return_value", **kw: Any) -> list[Any]:
        self.calls.append(("slice", kw["task_id"], kw["start"], kw["stop"], kw["step"]))
        return self.values[slice(kw["start"], kw["stop"], kw["step"])]


class _SyncFake(_FakeXComs):
    get_xcom_item = _FakeXComs._item
    get_xcom_count = _FakeXComs._count
    get_xcom_slice = _FakeXComs._slice


class _AsyncFake(_FakeXComs):
    async def get_xcom_item(self, *a: Any, **kw: Any) -> Any:
        return self._item(*a, **kw)

    async def get_xcom_count(self, *a: Any, **kw: Any) -> int:
        return self._count(*a, **kw)

    async def get_xcom_slice(self, *a: Any, **kw: Any) -> list[Any]:
        return self._slice(*a, **kw)

    async def get_xcom(self, key: str, *, task_id: str, map_index: Any) -> Any:
        self.calls.append(("whole", task_id, map_index))
        return self.whole


def test_lazy_sequence_reads_one_value_per_request() -> None:
    """len, indexing (negative too), slices and iteration map to count/item/slice requests."""
    from trio_coord.runtime.mapping import LazyXComSequence

    fake = _SyncFake([10, 20, 30])
    seq = LazyXComSequence(fake, "m")  # type: ignore[arg-type]
    assert len(seq) == 3 and len(seq) == 3
    assert fake.calls == [("count", "m")]  # the length is asked once
    assert seq[-1] == 30 and seq[1:] == [20, 30]
    with pytest.raises(IndexError):
        seq[3]
    fake.calls.clear()
    assert list(seq) == [10, 20, 30]
    assert fake.calls == [("item", "m", i) for i in range(4)]
    with pytest.raises(ValueError, match="step cannot be zero"):
        seq[::0]


def test_async_sequence_awaits_each_value() -> None:
    """await len/get/slice/list and async for, with IndexError past the end."""
    from trio_coord.runtime.mapping import AsyncXComSequence

    fake = _AsyncFake([1, 2])
    seq = AsyncXComSequence(fake, "m")  # type: ignore[arg-type]

    async def read() -> list[Any]:
        out = [await seq.len(), await seq.get(-2), await seq.list()]
        out.append([v async for v in seq])
        with pytest.raises(IndexError):
            await seq.get(2)
        return out

    assert trio.run(read) == [2, 1, [1, 2], [1, 2]]


def test_resolve_output_is_lazy_for_mapped_tasks_and_whole_otherwise() -> None:
    """The TaskFlow hook: a mapped output is a lazy sequence; an unmapped one is pulled unmapped."""
    from trio_coord.runtime.mapping import AsyncXComSequence, LazyXComSequence, resolve_output

    d = _dag()
    d.tasks["f"].expand(a=[1, 2])
    fake = _AsyncFake([5, 6], whole=[1, 2])

    async def resolve() -> list[Any]:
        return [
            await resolve_output(d.tasks["f"].output, fake, is_async=True),  # type: ignore[arg-type]
            await resolve_output(d.tasks["f"].output, fake, is_async=False),  # type: ignore[arg-type]
            await resolve_output(d.tasks["up"].output, fake, is_async=False),  # type: ignore[arg-type]
        ]

    a, s, whole = trio.run(resolve)
    assert isinstance(a, AsyncXComSequence) and isinstance(s, LazyXComSequence)
    assert whole == [1, 2] and fake.calls == [("whole", "up", None)]


def test_expanding_over_a_mapped_output_asks_count_then_one_item() -> None:
    """A mapped-upstream input costs one count and one item request, for the right index."""
    d = _dag()
    f = d.tasks["f"]

    @d.task
    def g(v: int) -> int:
        return v

    f.expand(a=[1, 2, 3])
    g.expand(v=f.output)
    fake = _AsyncFake([7, 8, 9])
    assert trio.run(_dict_of_lists, g, fake, 2) == {"v": 9}
    assert fake.calls == [("count", "f"), ("item", "f", 2)]


def test_local_run_over_a_mapped_upstream_says_it_cannot() -> None:
    """A one-task run has no mapped task's values: the try fails naming the upstream and the fix."""
    proc = _run("d1", "chained", "--map-index", "0")
    summary = json.loads(proc.stdout)
    assert summary["state"] == "failed"
    assert "mapped upstream 'double' has no values in this run" in summary["last_error"]
    assert "run the whole DAG" in summary["last_error"]
    assert "Traceback" not in proc.stderr


def test_a_mapped_task_without_a_map_index_fails_saying_so() -> None:
    """Running a mapped task unexpanded (no --map-index) fails with how to pick an instance."""
    proc = _run("d2", "cart")
    summary = json.loads(proc.stdout)
    assert summary["state"] == "failed"
    assert "pass --map-index N" in summary["last_error"]


def test_the_label_goes_on_every_terminal_that_carries_one() -> None:
    """A retry keeps the label too (§6.3); a reschedule has no such field and is unchanged."""
    from trio_coord.protocol.messages import RescheduleTask, RetryTask, TaskState
    from trio_coord.runtime.mapping import MappedTry

    now = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    labelled = MappedTry(label="x=1")
    assert labelled.labelled(RetryTask(end_date=now)).rendered_map_index == "x=1"  # type: ignore[attr-defined]
    assert labelled.labelled(TaskState(state="failed", end_date=now)).rendered_map_index == "x=1"  # type: ignore[attr-defined]
    resched = RescheduleTask(reschedule_date=now, end_date=now)
    assert labelled.labelled(resched) is resched
    assert MappedTry().labelled(TaskState(state="failed", end_date=now)).rendered_map_index is None  # type: ignore[attr-defined]
