"""The protocol model: a separate, deliberately simple description of the coordinator
protocol (``protocol_model``), and the tools that judge the real runtime by it
(``strategies``, ``fake_supervisor``, ``portal``, ``machines``).

``protocol_model`` is written from ``shared/spec/protocol.md`` alone and imports neither
trio, msgpack nor trio_coord; only the driving modules touch the implementation. Import
the submodules directly: this package imports nothing, so the pure model stays pure.
"""
