from __future__ import annotations

import pytest

from greenkpi.lib.envconfig import (
    ConfigError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    load_or_create_secret,
)


def test_booleans_accept_the_usual_words_and_reject_the_rest(monkeypatch):
    for word, expected in [
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("0", False),
        ("off", False),
        ("", False),
    ]:
        monkeypatch.setenv("X", word)
        assert env_bool("X", not expected) is expected
    monkeypatch.setenv("X", "maybe")
    with pytest.raises(ConfigError, match="X='maybe' is not a boolean"):
        env_bool("X", False)


def test_numbers_are_checked_against_their_bounds(monkeypatch):
    monkeypatch.setenv("N", "12")
    assert env_int("N", 1, minimum=1, maximum=20) == 12
    with pytest.raises(ConfigError, match="above the maximum"):
        env_int("N", 1, maximum=10)
    monkeypatch.setenv("N", "ten")
    with pytest.raises(ConfigError, match="not an integer"):
        env_int("N", 1)
    monkeypatch.setenv("F", "nan")
    with pytest.raises(ConfigError, match="finite"):
        env_float("F", 1.0)
    monkeypatch.delenv("F")
    assert env_float("F", 2.5) == 2.5


def test_secrets_can_come_from_a_file(monkeypatch, tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    monkeypatch.setenv("DB_PASSWORD_FILE", str(tmp_path / "pw"))
    assert env_str("DB_PASSWORD") == "s3cret"
    monkeypatch.setenv("DB_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot be read"):
        env_str("DB_PASSWORD")


def test_a_required_setting_must_be_present(monkeypatch):
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(ConfigError, match="NOPE must be set"):
        env_str("NOPE")


def test_lists_split_on_commas(monkeypatch):
    monkeypatch.setenv("L", " a, b ,,c ")
    assert env_list("L") == ["a", "b", "c"]


def test_a_generated_secret_is_stable_and_private(tmp_path):
    path = tmp_path / "secret_key"
    first = load_or_create_secret(path)
    assert len(first) > 40
    assert load_or_create_secret(path) == first
    assert path.stat().st_mode & 0o777 == 0o600


def test_bad_settings_stop_the_process_at_start_up(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='greenkpi.settings'; django.setup()",
        ],
        env={
            "PATH": "/usr/bin:/bin",
            "GREENKPI_VAR_DIR": str(tmp_path),
            "INGEST_MAX_SAMPLES": "lots",
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "INGEST_MAX_SAMPLES='lots' is not an integer" in result.stderr
