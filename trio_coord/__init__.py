"""trio-coord: a Trio runtime for Apache Airflow's coordinator protocol."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
