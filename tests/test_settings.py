"""Settings: the seed's variable names, .env files, and a documented .env.example."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from engine.settings import Settings
from tests.conftest import REPO


def test_defaults_run_locally_without_aws(monkeypatch):
    monkeypatch.delenv("NEXUS_DATA_DIR")
    settings = Settings()
    assert settings.embedding_strategy == "local"
    assert str(settings.data_dir) == "data"
    assert settings.inbox_dir.as_posix() == "data/inbox"
    assert (settings.chunk_size, settings.chunk_overlap) == (800, 100)
    assert settings.bedrock_model_id == "amazon.titan-embed-text-v2:0"


def test_environment_and_dotenv_use_the_seed_names(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("EMBEDDING_STRATEGY=hybrid\nBEDROCK_REGION=ap-southeast-3\n")
    monkeypatch.setenv("FALLBACK_ENABLED", "false")
    settings = Settings()
    assert settings.embedding_strategy == "hybrid"
    assert settings.bedrock_region == "ap-southeast-3"
    assert settings.fallback_enabled is False


def test_bad_values_are_refused_with_the_variable_name(monkeypatch):
    monkeypatch.setenv("BEDROCK_DIMENSIONS", "300")
    with pytest.raises(ValidationError, match="BEDROCK_DIMENSIONS"):
        Settings()


def test_every_setting_is_documented_in_env_example_with_its_default():
    documented = {}
    names = {f.alias for f in Settings.model_fields.values()}
    for line in (REPO / ".env.example").read_text().splitlines():
        # "# NAME=value" documents a switch-on setting: present = feature on
        name, _, value = line.removeprefix("# ").partition("=")
        if name in names and (not line.startswith("#") or line.startswith(f"# {name}=")):
            documented[name] = value
    fields = Settings.model_fields
    assert set(documented) == {f.alias for f in fields.values()}
    for field in fields.values():
        default = field.default
        expected = (
            ""
            if default is None
            else str(default).lower()
            if isinstance(default, bool)
            else json.dumps(default)
            if isinstance(default, dict)
            else str(default)
        )
        assert documented[field.alias] == expected, field.alias


def test_a_copied_env_example_keeps_the_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("NEXUS_DATA_DIR")
    monkeypatch.delenv("WATCH_STABLE_SECONDS")
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text())
    assert Settings() == Settings(_env_file=None)
    assert Settings().inbox_dir.as_posix() == "data/inbox"  # empty NEXUS_INBOX_DIR = default


def test_durations_are_parsed_once_and_nonsense_is_refused(monkeypatch):
    from engine.util import parse_duration

    assert [parse_duration(t) for t in ("90", "30s", "15m", "1h", "2d")] == [
        90,
        30,
        900,
        3600,
        172800,
    ]
    monkeypatch.setenv("BACKUP_EVERY", "daily")
    with pytest.raises(ValidationError, match="BACKUP_EVERY"):
        Settings()
