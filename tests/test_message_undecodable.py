"""A verified Thespian message that cannot be unpickled is logged (``message_undecodable``)
with its cause: Thespian drops it, and its sender is never told."""

from __future__ import annotations

import sys
import types

import pytest
from structlog.testing import capture_logs

from babyray import auth


@pytest.fixture
def token():
    """This test process proves a fresh token; the previous one is restored afterwards."""
    before = auth.current_token()
    auth.use_token(auth.generate_token())
    yield auth.current_token()
    auth.use_token(before)


def test_a_message_naming_a_class_the_receiver_lacks_is_logged_with_the_cause(token, monkeypatch):
    module = types.ModuleType("babyray_test_sender_only")
    exec("class DefinedLate(Exception):\n    pass\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    frame = auth.MessageSigner({}).dumps({"retry_on": [module.DefinedLate]})
    monkeypatch.delattr(module, "DefinedLate")  # the receiver never defined it
    with capture_logs() as events, pytest.raises(AttributeError, match="DefinedLate"):
        auth.MessageSigner({}).loads(frame)
    [event] = [e for e in events if e["event"] == "message_undecodable"]
    assert event["error_type"] == "AttributeError" and "DefinedLate" in event["error"]
    assert event["size"] == len(frame)


def test_a_decodable_message_logs_nothing(token):
    frame = auth.MessageSigner({}).dumps({"task": 1})
    with capture_logs() as events:
        assert auth.MessageSigner({}).loads(frame) == {"task": 1}
    assert not [e for e in events if e["event"] == "message_undecodable"]
