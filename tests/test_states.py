"""The conversation state table (protocol.md §2.6, §4, §6.1), tested from TRANSITIONS itself.

Every (State, Input) pair is drawn: pairs in the table move to the table's state; missing
local pairs raise LocalProtocolError and change nothing; missing remote pairs raise
RemoteProtocolError and leave the conversation in ERROR for good. Each state is reached by a
path through the table from AWAIT_FIRST, never by assigning it.
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_coord.errors import LocalProtocolError, RemoteProtocolError
from trio_coord.protocol.states import TRANSITIONS, ConversationState, Input, State

LOCAL = [i for i in Input if i.is_local]
REMOTE = [i for i in Input if not i.is_local]
#: The inputs that end the conversation from our side: exactly one may ever be processed.
ENDING = {Input.SEND_TERMINAL, Input.SEND_PARSE_RESULT}


def _shortest_paths() -> dict[State, list[Input]]:
    """For each state, the shortest list of inputs that reaches it from AWAIT_FIRST."""
    paths: dict[State, list[Input]] = {State.AWAIT_FIRST: []}
    queue = deque([State.AWAIT_FIRST])
    while queue:
        state = queue.popleft()
        for (src, event), dst in TRANSITIONS.items():
            if src is state and dst not in paths:
                paths[dst] = [*paths[state], event]
                queue.append(dst)
    # ERROR is not in the table: it is where any missing remote pair leads.
    paths[State.ERROR] = [Input.RECV_REPLY]
    return paths


PATHS = _shortest_paths()


def in_state(state: State) -> ConversationState:
    """A fresh ConversationState driven to ``state`` through the table."""
    conv = ConversationState()
    for event in PATHS[state]:
        if state is State.ERROR:
            with pytest.raises(RemoteProtocolError):
                conv.process(event)
        else:
            conv.process(event)
    assert conv.state is state
    return conv


def test_every_state_is_reachable() -> None:
    """Every State can be reached from AWAIT_FIRST, ERROR included."""
    assert set(PATHS) == set(State)


@given(st.sampled_from(State), st.sampled_from(Input))
def test_every_pair(state: State, event: Input) -> None:
    """Allowed pairs move to the table's state; others raise the side's error as the module says."""
    conv = in_state(state)
    nxt = TRANSITIONS.get((state, event))
    if nxt is not None:
        assert conv.process(event) is nxt
        assert conv.state is nxt
    elif event.is_local:
        with pytest.raises(LocalProtocolError):
            conv.process(event)
        assert conv.state is state
    else:
        with pytest.raises(RemoteProtocolError):
            conv.process(event)
        assert conv.state is State.ERROR


@given(st.sampled_from(State), st.sampled_from(LOCAL))
def test_check_matches_process_and_never_moves(state: State, event: Input) -> None:
    """check() raises exactly when process() would for a local input, and never changes the state."""
    conv = in_state(state)
    if (state, event) in TRANSITIONS and state is not State.ERROR:
        conv.check(event)
    else:
        with pytest.raises(LocalProtocolError):
            conv.check(event)
    assert conv.state is state


@given(st.sampled_from([s for s in State if s is not State.ERROR]), st.sampled_from(REMOTE))
def test_error_is_for_good(state: State, event: Input) -> None:
    """After a remote violation every input raises: the same error for remote ones, a local one for ours."""
    conv = in_state(state)
    if (state, event) in TRANSITIONS:
        return  # not a violation from here
    with pytest.raises(RemoteProtocolError) as first:
        conv.process(event)
    assert conv.error is first.value
    for later in Input:
        if later.is_local:
            with pytest.raises(LocalProtocolError) as local:
                conv.process(later)
            assert local.value.__cause__ is first.value
        else:
            with pytest.raises(RemoteProtocolError) as again:
                conv.process(later)
            assert again.value is first.value
        assert conv.state is State.ERROR


@given(st.lists(st.sampled_from(Input), max_size=30))
def test_at_most_one_ending_send(events: list[Input]) -> None:
    """On any walk through the table, one terminal (or parse-result) send at most, and nothing sent after it."""
    conv = ConversationState()
    ended = False
    for event in events:
        if (conv.state, event) not in TRANSITIONS:
            continue
        if event.is_local:
            assert not ended, f"{event.name} allowed after the terminal request"
        conv.process(event)
        ended = ended or event in ENDING


@pytest.mark.parametrize("state", [s for s in State if s is not State.ERROR])
def test_eof_closes_from_every_state(state: State) -> None:
    """EOF is allowed wherever the conversation is not broken, and always leads to CLOSED."""
    assert TRANSITIONS[(state, Input.RECV_EOF)] is State.CLOSED


def test_error_has_no_way_out() -> None:
    """ERROR appears nowhere in the table: it is entered only through a violation and never left."""
    assert all(State.ERROR not in (src, dst) for (src, _), dst in TRANSITIONS.items())


def test_nothing_is_sent_before_the_first_frame() -> None:
    """In AWAIT_FIRST no local input is allowed (protocol.md §2.6 step 4)."""
    assert not [i for i in LOCAL if (State.AWAIT_FIRST, i) in TRANSITIONS]


def test_requests_are_allowed_while_parsing() -> None:
    """A parse may read variables and connections (dag-parsing.md §2.1), then send its one result."""
    conv = in_state(State.PARSING)
    conv.process(Input.SEND_REQUEST)
    conv.process(Input.RECV_REPLY)
    assert conv.state is State.PARSING
    with pytest.raises(LocalProtocolError, match="DagFileParsingResult"):
        conv.process(Input.SEND_TERMINAL)
    assert conv.process(Input.SEND_PARSE_RESULT) is State.TERMINAL_SENT


def test_task_only_requests_are_refused_while_parsing() -> None:
    """Outside the parse channel's union a request is refused locally and the state stays PARSING."""
    conv = in_state(State.PARSING)
    with pytest.raises(LocalProtocolError, match=r"cannot send SetXCom: .*parse channel"):
        conv.process(Input.SEND_TASK_REQUEST, "SetXCom")
    assert conv.state is State.PARSING
    assert in_state(State.RUNNING).process(Input.SEND_TASK_REQUEST) is State.RUNNING


def test_is_local_is_the_send_inputs() -> None:
    """Exactly the four SEND_* inputs count as ours."""
    assert {
        Input.SEND_REQUEST,
        Input.SEND_TASK_REQUEST,
        Input.SEND_TERMINAL,
        Input.SEND_PARSE_RESULT,
    } == set(LOCAL)


def test_local_refusal_names_what_was_refused() -> None:
    """A refused send says what was being sent and why."""
    conv = in_state(State.TERMINAL_SENT)
    with pytest.raises(LocalProtocolError, match=r"cannot send GetVariable: .*terminal"):
        conv.process(Input.SEND_REQUEST, "GetVariable")


def test_remote_violation_names_the_state() -> None:
    """A remote violation says what arrived and in which state."""
    conv = in_state(State.DONE)
    with pytest.raises(RemoteProtocolError, match="unexpected frame id 7 in state DONE"):
        conv.process(Input.RECV_REPLY, "frame id 7")
