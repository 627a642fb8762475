"""babyray.config.Settings: explicit value > BABYRAY_<NAME> environment variable > default."""

from __future__ import annotations

import pytest

from babyray import config
from babyray.config import DEFAULTS, Settings

# One setting of each kind: (name, environment text, its value, an explicit value).
KINDS = [
    ("max_workers", "7", 7, 9),  # int
    ("object_store_memory", "2e6", 2_000_000, 3_000_000),  # int written as a float
    ("node_timeout", "2.5", 2.5, 1.25),  # float
    ("gcs_flushing", "off", False, True),  # bool
    ("scheduling_policy", "queue", "queue", "locality"),  # str
]


@pytest.mark.parametrize("name, text, from_env, explicit", KINDS)
def test_explicit_beats_environment_beats_default(name, text, from_env, explicit):
    variable = f"BABYRAY_{name.upper()}"
    assert getattr(Settings(environ={}), name) == DEFAULTS[name]
    assert getattr(Settings(environ={variable: text}), name) == from_env != DEFAULTS[name]
    assert getattr(Settings({name: explicit}, environ={variable: text}), name) == explicit
    assert getattr(Settings({name: None}, environ={variable: text}), name) == from_env  # None: not given


def test_every_default_is_a_typed_attribute():
    assert set(Settings.__annotations__) == set(DEFAULTS)
    settings = Settings(environ={})
    for name, default in DEFAULTS.items():
        assert getattr(settings, name) == default
        assert Settings.__annotations__[name] == type(default).__name__


def test_values_take_the_type_of_the_default():
    settings = Settings(
        {"max_workers": 4.0, "node_timeout": 3, "gcs_flushing": "false"},
        environ={"BABYRAY_HEARTBEAT_PERIOD": "1", "BABYRAY_GCS_FLUSHING": "1"},
    )
    assert settings.max_workers == 4 and isinstance(settings.max_workers, int)
    assert settings.node_timeout == 3.0 and isinstance(settings.node_timeout, float)
    assert settings.heartbeat_period == 1.0 and isinstance(settings.heartbeat_period, float)
    assert settings.gcs_flushing is False


def test_the_process_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv("BABYRAY_TEMP_DIR", "/somewhere/else")
    assert Settings().temp_dir == "/somewhere/else"
    assert Settings({"temp_dir": "/given"}).temp_dir == "/given"


def test_unknown_names_and_bad_values_are_errors():
    with pytest.raises(ValueError, match="unknown setting.*no_such_thing"):
        Settings({"no_such_thing": 1})
    with pytest.raises(AttributeError):
        Settings().no_such_thing  # noqa: B018
    with pytest.raises(ValueError, match="max_workers.*'many' from BABYRAY_MAX_WORKERS"):
        Settings(environ={"BABYRAY_MAX_WORKERS": "many"}).max_workers  # noqa: B018
    with pytest.raises(ValueError, match="node_timeout.*from the argument"):
        config.Settings({"node_timeout": "soon"}).node_timeout  # noqa: B018
