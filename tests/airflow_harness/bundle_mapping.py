"""Dynamic task mapping test DAGs: for the real supervisor, the export route and the oracle.

Task functions import the runtime lazily: the DAG processor imports this file without trio.
"""

from __future__ import annotations

import datetime
from typing import Any

from trio_coord import Bundle

bundle = Bundle("mapping-tests", version="1.0")
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

# -- expand over an upstream output, reduce the mapped output --------------------------
d1 = bundle.dag("d1", start_date=START, default_args={"retries": 1})


@d1.task
def make() -> list[int]:
    return [1, 2, 3]


@d1.task(map_index_template="x={x}", retry_delay=datetime.timedelta(seconds=5))
def double(x: int, factor: int) -> int:
    return x * factor


double.partial(factor=10).expand(x=make.output)


@d1.task
def total(client: Any) -> int:
    from trio_coord.runtime.mapping import LazyXComSequence

    values = LazyXComSequence(client, "double")
    return sum(values) + 1000 * len(values)


@d1.task
async def atotal(client: Any) -> list[int]:
    from trio_coord.runtime.mapping import AsyncXComSequence

    values = AsyncXComSequence(client, "double")
    seen = [v async for v in values]
    return [await values.len(), await values.get(-1), *seen]


total << double
atotal << double


@d1.task
def chained(v: int) -> int:
    return v + 1


chained.expand(v=double.output)


@d1.task
def configs() -> list[dict[str, Any]]:
    return [{"a": 1}, {"a": 2, "b": 3}]


@d1.task(map_index_template="{a}+{b}")
def from_configs(a: int, b: int = 0) -> int:
    return a + b


from_configs.expand_kwargs(configs.output)

# -- literal inputs: the cartesian product, expand_kwargs, a label function ------------
d2 = bundle.dag("d2", start_date=START)


@d2.task(map_index_template="{a}/{b}")
def cart(a: int, b: str) -> str:
    return f"{a}{b}"


cart.expand(a=[1, 2], b=["x", "y", "z"])


@d2.task(map_index_template=lambda a, b: f"{b}:{a}")
def kw(a: int, b: int = 0) -> int:
    return a + b


kw.expand_kwargs([{"a": 1, "b": 2}, {"a": 5}])


@d2.task
def pairs(item: Any) -> Any:
    return list(item)


pairs.expand(item={"k1": 1, "k2": 2})


@d2.task(map_index_template="{x}")
def boom(x: int) -> None:
    raise RuntimeError(f"boom {x}")


boom.expand(x=[7, 8])

# -- an upstream that breaks the mapping contract ---------------------------------------
d3 = bundle.dag("d3", start_date=START)


@d3.task
def scalar() -> int:
    return 5


@d3.task
def nothing() -> None:
    return None


@d3.task
def use(x: int) -> int:
    return x


@d3.task
def use2(x: int) -> int:
    return x


use.expand(x=scalar.output)
use2.expand_kwargs(nothing.output)
