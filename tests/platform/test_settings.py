"""Settings: one object, validated at start, clear one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.platform.settings import Settings, SettingsError, load_settings


def test_conventional_names_and_weft_prefix_both_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example:5432/weft")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.example:7233")
    monkeypatch.setenv("WEFT_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("WEFT_CORS_ORIGINS", "http://a.example, http://b.example")
    settings = load_settings()
    assert settings.resolved_database_url == "postgresql+psycopg://db.example:5432/weft"
    assert settings.temporal_target == "temporal.example:7233"
    assert not settings.manages_temporal
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.cors_origins == ["http://a.example", "http://b.example"]


def test_default_is_embedded_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'weft.db'}"
    assert settings.manages_temporal
    assert settings.temporal_target == "127.0.0.1:7233"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "DATABASE_URL: not a database URL"),
        ("mysql://db/weft", "DATABASE_URL: unsupported database 'mysql'"),
    ],
)
def test_invalid_database_url_is_one_line(url: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(database_url=url)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_production_refuses_to_start_without_a_real_secret() -> None:
    with pytest.raises(SettingsError, match="WEFT_JWT_SECRET must be set"):
        load_settings(env="production", database_url="postgresql://db/weft")
    with pytest.raises(SettingsError, match="at least 32"):
        load_settings(env="production", database_url="postgresql://db/weft", jwt_secret="short")
    real = {"env": "production", "database_url": "postgresql://db/weft", "jwt_secret": "s" * 40}
    with pytest.raises(SettingsError, match="WEFT_ENCRYPTION_KEYS must be set"):
        load_settings(**real)
    with pytest.raises(SettingsError, match="at least 32"):
        load_settings(**real, encryption_keys="k" * 40 + ",short")
    ok = load_settings(**real, encryption_keys="k" * 40)
    assert ok.resolved_jwt_secret() == "s" * 40
    assert ok.resolved_encryption_keys() == ["k" * 40]


def test_invalid_port_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="API_PORT"):
        load_settings(api_port=70000)


def test_dev_jwt_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).resolved_jwt_secret()
    again = Settings(data_dir=tmp_path).resolved_jwt_secret()
    assert first == again
    assert len(first) >= 32
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0
