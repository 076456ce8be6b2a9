"""The protocol model's state machines against the real code.

The default run uses the ``ci`` settings profile (scaled per machine below, so the whole
file stays within a few seconds of CI time); ``nox -s model`` runs the same machines with
``HYPOTHESIS_PROFILE=long``.
"""

from __future__ import annotations

from hypothesis import settings

from model.machines import ConnectionVsModel, RuntimeVsModel

#: Examples per machine, as a multiple of the profile's max_examples: the runtime machine
#: is cheap per example (virtual time), and most of its examples are short conversations.
RUNTIME_SCALE = 5

TestConnectionVsModel = ConnectionVsModel.TestCase
TestConnectionVsModel.__doc__ = (
    "CommConnection keeps the model's conversation rules in every generated sequence."
)

TestRuntimeVsModel = RuntimeVsModel.TestCase
TestRuntimeVsModel.settings = settings(
    settings.default, max_examples=settings.default.max_examples * RUNTIME_SCALE
)
TestRuntimeVsModel.__doc__ = (
    "The runtime sends, resolves, logs and exits as the model says in every conversation."
)
