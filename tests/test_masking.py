"""Secret masking: which values count as secrets, how they are replaced, and that nothing
the log pipeline sends (message, extras, context, exception text) escapes it."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_coord.runtime.logs import LevelFilter, LogPipeline
from trio_coord.runtime.masking import DEFAULT_SENSITIVE_NAMES, MASK, Masker


def test_secrets_shorter_than_five_characters_are_ignored() -> None:
    """Masking a 4-character value would shred unrelated text, so it is not registered."""
    masker = Masker()
    masker.add("abcd")
    masker.add("")
    assert masker.mask("abcd abcde") == "abcd abcde"
    masker.add("abcde")
    assert masker.mask("abcd abcde") == f"abcd {MASK}"


def test_short_secrets_are_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    """Skipping a short secret logs one warning per masker, however many are skipped."""
    masker = Masker()
    with caplog.at_level(logging.WARNING, logger="trio_coord.runtime.masking"):
        masker.add("abc")
        masker.add(["xy", "z"])
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_longest_secret_wins_where_secrets_overlap() -> None:
    """A secret that contains another is hidden whole, not leaving its tail visible."""
    masker = Masker()
    masker.add("hunter2")
    masker.add("hunter2-extended")
    assert masker.mask("pw=hunter2-extended;old=hunter2") == f"pw={MASK};old={MASK}"


def test_every_occurrence_is_replaced_and_regex_characters_are_literal() -> None:
    """Secrets are matched literally, everywhere they occur."""
    masker = Masker()
    masker.add("a.b*c(d)")
    assert masker.mask("a.b*c(d) axbbbc(d) a.b*c(d)") == f"{MASK} axbbbc(d) {MASK}"


def test_no_secrets_means_the_text_is_returned_untouched() -> None:
    """With nothing registered mask() is the identity and redact() changes no value."""
    text = "nothing to hide here"
    masker = Masker()
    assert masker.mask(text) is text
    assert not masker.active
    value = {"a": ["b", 1, None, 2.5]}
    assert masker.redact(value) == value


def test_maps_register_only_values_under_sensitive_keys() -> None:
    """As in the supervisor, a map value is a secret only when its key names something sensitive."""
    masker = Masker()
    masker.add(
        {
            "password": "pa55word!",
            "region": "eu-west-1",
            "extra": {"API_KEY": "key-12345", "timeout": "30000"},
            "My-Secret-Token": ["tok-aaaaa", "tok-bbbbb"],
        }
    )
    text = "pa55word! eu-west-1 key-12345 30000 tok-aaaaa tok-bbbbb"
    assert masker.mask(text) == f"{MASK} eu-west-1 {MASK} 30000 {MASK} {MASK}"


def test_unnamed_values_and_lists_are_always_registered() -> None:
    """A value added without a name (a connection password, a MaskSecret) is always masked."""
    masker = Masker()
    masker.add(["first-secret", ("second-secret", 42, None)])
    masker.add("third-secret", name="password")
    masker.add("not-a-secret", name="hostname")
    assert masker.mask("first-secret second-secret third-secret not-a-secret") == (
        f"{MASK} {MASK} {MASK} not-a-secret"
    )


def test_the_word_airflow_is_never_a_secret() -> None:
    """A password of "airflow" (the docker-compose default) would mask every log line."""
    masker = Masker()
    masker.add("airflow")
    masker.add("AIRFLOW")
    assert masker.mask("airflow task runner") == "airflow task runner"


def test_from_env_adds_sensitive_names_and_reads_the_minimum_length() -> None:
    """The supervisor's configuration knobs are honoured; garbage in the length is ignored."""
    masker = Masker.from_env(
        {
            "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "pin, vault_path",
            "AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET": "3",
        }
    )
    masker.add({"pin": "123", "vault_path": "kv/team", "host": "db-host"})
    assert masker.mask("123 kv/team db-host") == f"{MASK} {MASK} db-host"
    default = Masker.from_env({"AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET": "many"})
    default.add("1234")
    assert default.mask("1234") == "1234"


NAMES = [
    "password", "PASSWORD", "db-password", "My Api-Key", "apikey", "x_token_y", "host",
    "login", "schema", "pin", "PIN", "vault path", "vault_path", "Vault_Path", "region",
    "secret_santa", "  access_key  ", "proxy_user", "dsn", "", "airflow", "tokens",
]  # fmt: skip


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "pin, vault_path"},
        {"AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "Vault_Path,PIN"},
        {"AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "pin,"},
        {"AIRFLOW__CORE__HIDE_SENSITIVE_VAR_CONN_FIELDS": "False"},
    ],
)
def test_name_rule_matches_the_task_sdk_masker(env: dict[str, str]) -> None:
    """For every name, Masker.from_env decides as task-sdk 1.3.2's masker configured from the same settings."""
    from airflow.sdk._shared.secrets_masker import DEFAULT_SENSITIVE_FIELDS, SecretsMasker

    native = SecretsMasker()
    fields = set(DEFAULT_SENSITIVE_FIELDS)
    extra = env.get("AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES", "")
    if extra:
        fields |= {f.strip() for f in extra.split(",")}  # as airflow.settings does
    native.sensitive_variables_fields = list(fields)
    native.hide_sensitive_var_conn_fields = (
        env.get("AIRFLOW__CORE__HIDE_SENSITIVE_VAR_CONN_FIELDS", "True") != "False"
    )
    ours = Masker.from_env(env)
    assert DEFAULT_SENSITIVE_NAMES == DEFAULT_SENSITIVE_FIELDS
    for name in NAMES:
        assert ours.is_sensitive_name(name) == native.should_hide_value_for_key(name), name


def test_redact_walks_nested_structures_masks_keys_and_makes_them_json() -> None:
    """Strings at any depth, map keys included, are masked; tuples and sets become lists; odd leaves become JSON."""
    masker = Masker()
    masker.add("s3cr3t-value")
    value = {
        "k": ["x s3cr3t-value y", ("s3cr3t-value", 7)],
        "s3cr3t-value": None,
        "n": 1.5,
        "inf": float("inf"),
        "big": 1 << 20_000,
        "raw": b"s3cr3t-value",
    }
    redacted = masker.redact(value)
    assert isinstance(redacted, dict)
    assert redacted["k"] == [f"x {MASK} y", [MASK, 7]]
    assert redacted[MASK] is None and redacted["n"] == 1.5 and redacted["inf"] == "inf"
    assert redacted["raw"] == MASK and str(redacted["big"]).startswith("0x")
    assert "s3cr3t-value" not in json.dumps(redacted)


def test_redact_hides_every_string_under_a_sensitive_key() -> None:
    """As in the supervisor, any string under a sensitive key is hidden, registered or not; other leaves stay."""
    masker = Masker()
    value = {"user": "bob", "auth": {"api_key": "k1", "retries": 3}, "tokens": ["ab", "cd"]}
    assert masker.redact(value) == {
        "user": "bob",
        "auth": {"api_key": MASK, "retries": 3},
        "tokens": [MASK, MASK],
    }
    assert masker.redact("plain text", name="password") == MASK


def test_redact_survives_cycles() -> None:
    """A self-referencing structure is flattened at a depth bound, masked, and does not recurse forever."""
    masker = Masker()
    masker.add("cyclic-secret")
    loop: list[object] = ["cyclic-secret"]
    loop.append(loop)
    masked = masker.redact(loop)
    assert "cyclic-secret" not in json.dumps(masked)


def test_adding_and_masking_from_many_threads_is_safe() -> None:
    """Concurrent add() and mask() never fail, and every secret added is masked afterwards."""
    masker = Masker()
    errors: list[BaseException] = []

    def adder(n: int) -> None:
        for i in range(100):
            masker.add(f"secret-{n}-{i:04d}")

    def reader() -> None:
        try:
            for _ in range(2000):
                masker.mask("secret-1-0001 and secret-2-0099")
        except BaseException as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    threads = [threading.Thread(target=adder, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert masker.mask("secret-3-0099 secret-0-0000") == f"{MASK} {MASK}"


@given(
    secrets=st.lists(st.text(alphabet="abcxyz-", min_size=5, max_size=12), min_size=1, max_size=6),
    filler=st.lists(st.text(alphabet="abcxyz- ", max_size=8), max_size=8),
)
def test_no_registered_secret_survives_masking(secrets: list[str], filler: list[str]) -> None:
    """Whatever the overlap between secrets, the masked text contains none of them."""
    masker = Masker()
    for secret in secrets:
        masker.add(secret)
    text = "".join(
        part for pair in zip(filler, secrets * len(filler), strict=False) for part in pair
    ) + "".join(secrets)
    masked = masker.mask(text)
    for secret in secrets:
        assert secret not in masked


# --------------------------------------------------------------------------------------
# Through the log pipeline: nothing leaves unmasked
# --------------------------------------------------------------------------------------


def _pipeline(masker: Masker) -> LogPipeline:
    return LogPipeline(level_filter=LevelFilter(), masker=masker)


def _record(
    msg: str,
    *args: object,
    exc_info: logging._SysExcInfoType | None = None,
    extra: dict[str, object] | None = None,
) -> logging.LogRecord:
    return logging.getLogger("task").makeRecord(
        "task", logging.ERROR, __file__, 1, msg, args, exc_info, extra=extra
    )


def test_secrets_in_the_message_and_its_arguments_are_masked() -> None:
    """The formatted event is masked, whether the secret came from the format or an argument."""
    masker = Masker()
    masker.add("topsecret1")
    line = _pipeline(masker).render(_record("connecting with %s and topsecret1", "topsecret1"))
    assert json.loads(line)["event"] == f"connecting with {MASK} and {MASK}"


def test_secrets_inside_extras_are_masked_at_any_depth() -> None:
    """Extra fields are masked wherever the secret sits: strings, bytes, nested maps, lists, str()."""

    class Holder:
        def __str__(self) -> str:
            return "holder(topsecret1)"

    masker = Masker()
    masker.add("topsecret1")
    extra = {
        "plain": "topsecret1",
        "raw": b"topsecret1",
        "nested": {"deeper": ["x", {"k": "prefix-topsecret1-suffix"}]},
        "obj": Holder(),
    }
    line = _pipeline(masker).render(_record("m", extra=extra))
    assert b"topsecret1" not in line
    fields = json.loads(line)
    assert fields["plain"] == MASK and fields["raw"] == MASK
    assert fields["nested"]["deeper"][1]["k"] == f"prefix-{MASK}-suffix"
    assert fields["obj"] == f"holder({MASK})"


def test_secrets_in_exception_text_notes_and_chain_are_masked() -> None:
    """Exception values, notes and chained causes are masked before they are sent."""
    masker = Masker()
    masker.add("topsecret1")
    try:
        try:
            raise KeyError("lookup of topsecret1")
        except KeyError as inner:
            outer = RuntimeError("login failed for topsecret1")
            outer.add_note("retry with topsecret1")
            raise outer from inner
    except RuntimeError as exc:
        record = _record("failed", exc_info=(type(exc), exc, exc.__traceback__))
    line = _pipeline(masker).render(record)
    assert b"topsecret1" not in line
    chain = json.loads(line)["exception"]
    assert chain[0]["exc_value"] == f"login failed for {MASK}"
    assert chain[0]["exc_notes"] == [f"retry with {MASK}"]
    assert chain[1]["exc_value"] == f"'lookup of {MASK}'"


def test_secrets_added_after_bind_are_masked_in_bound_fields() -> None:
    """Context bound before a secret was known is re-masked once the secret is added."""
    masker = Masker()
    pipeline = _pipeline(masker)
    pipeline.bind(run_id="run-with-topsecret1")
    assert b"topsecret1" in pipeline.render(_record("before"))
    masker.add("topsecret1")
    line = pipeline.render(_record("after"))
    assert json.loads(line)["run_id"] == f"run-with-{MASK}"


def test_secrets_in_logger_names_are_masked() -> None:
    """Even a logger named after a secret does not leak it (the name is cached per masker version)."""
    masker = Masker()
    pipeline = _pipeline(masker)
    record = logging.getLogger("x").makeRecord(
        "conn.topsecret1", logging.INFO, __file__, 1, "m", (), None
    )
    pipeline.render(record)
    masker.add("topsecret1")
    assert json.loads(pipeline.render(record))["logger"] == f"conn.{MASK}"
