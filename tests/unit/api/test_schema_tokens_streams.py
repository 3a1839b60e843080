"""Request bodies checked against their schema, the token file, and the streams' fan-out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meterd.api.errors import ApiError
from meterd.api.schema import Body, Field
from meterd.api.streams import StreamHub
from meterd.api.tokens import Role, TokenFileError, ensure_tokens, load_tokens

BODY = Body((Field("phase", str, choices=("A", "all")), Field("voltage_v", float, "V", minimum=0, maximum=480),
             Field("seed", int), Field("long", bool), Field("kind", str, required=True)))


@pytest.mark.parametrize(("body", "reason"), [
    ({"kind": "x", "extra": 1}, "unknown key(s) extra"),
    ({}, "body needs 'kind'"),
    ({"kind": "x", "voltage_v": "230"}, "voltage_v must be a number"),
    ({"kind": "x", "voltage_v": True}, "voltage_v must be a number"),
    ({"kind": "x", "voltage_v": 500}, "voltage_v=500 out of range 0..480"),
    ({"kind": "x", "seed": 1.5}, "seed must be an integer"),
    ({"kind": "x", "long": 1}, "long must be a boolean"),
    ({"kind": "x", "phase": "D"}, "phase='D': expected one of A, all"),
])
def test_a_body_that_does_not_fit_is_refused_with_the_reason(body: dict[str, object], reason: str) -> None:
    with pytest.raises(ApiError) as err:
        BODY.check(body)
    assert err.value.status == 400 and reason in err.value.message


def test_a_body_that_fits_passes_and_integers_are_numbers() -> None:
    BODY.check({"kind": "x", "voltage_v": 230, "phase": "A", "seed": 3, "long": False})
    schema = BODY.json_schema()
    assert schema["additionalProperties"] is False and schema["required"] == ["kind"]
    assert schema["properties"]["voltage_v"] == {"type": "number", "description": "V", "minimum": 0, "maximum": 480}


def test_a_simulated_meter_makes_a_private_token_file_and_a_real_one_needs_it(tmp_path: Path) -> None:
    path = tmp_path / "api-tokens.toml"
    with pytest.raises(TokenFileError, match="No such file"):
        ensure_tokens(path, create=False)
    tokens = ensure_tokens(path, create=True)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert len(tokens.read) == len(tokens.control) == 1 and tokens.read != tokens.control
    assert ensure_tokens(path, create=True) == tokens  # kept across restarts
    assert tokens.role_of(tokens.read[0]) is Role.READ and tokens.role_of(tokens.control[0]) is Role.CONTROL
    assert tokens.role_of("x" * 32) is None
    assert Role.CONTROL.allows(Role.READ) and not Role.READ.allows(Role.CONTROL)


@pytest.mark.parametrize(("text", "mode", "reason"), [
    ('read = ["0123456789abcdef0"]\n', 0o644, "readable by others"),
    ('read = ["short"]\n', 0o600, "shorter than 16"),
    ('admin = ["0123456789abcdef0"]\n', 0o600, "unknown key"),
    ("read = []\n", 0o600, "lists no token"),
    ("read = [\n", 0o600, "api-tokens.toml"),
])
def test_a_bad_token_file_is_refused(tmp_path: Path, text: str, mode: int, reason: str) -> None:
    path = tmp_path / "api-tokens.toml"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(TokenFileError, match=reason):
        load_tokens(path)


def test_a_slow_subscriber_loses_its_oldest_messages_and_nobody_listening_costs_nothing() -> None:
    hub = StreamHub()
    hub.declare("values", "test")
    made: list[int] = []

    def payload() -> dict[str, object]:
        made.append(1)
        return {"n": len(made)}

    hub.publish("values", payload)
    assert made == []  # nobody listens: the payload is not even made
    slow, fast = hub.subscribe("values", depth=3), hub.subscribe("values", depth=100)
    for _ in range(5):
        hub.publish("values", payload)
    assert len(made) == 5  # made once per publication, whatever the number of clients
    assert slow.dropped == 2 and len(slow.queue) == 3 and '"n":3' in slow.queue[0]
    assert fast.dropped == 0 and len(fast.queue) == 5 and hub.dropped_total == 2
    hub.unsubscribe(slow)
    hub.unsubscribe(fast)
    assert hub.client_count() == 0
    with pytest.raises(KeyError):
        hub.subscribe("nothing")
