"""The parse workload's stateful machine (model/parse_machine.py) under the CI Hypothesis profile."""

from __future__ import annotations

from hypothesis import settings

from model.parse_machine import ParseMachine

TestParseConversation = ParseMachine.TestCase
TestParseConversation.settings = settings(settings.default, stateful_step_count=12)
