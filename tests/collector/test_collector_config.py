"""Config precedence, the token's rules, and the collector's independence from the backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from gkc_helpers import COLLECTOR, REPO
from greenkpi_collector.cli import parser
from greenkpi_collector.config import ConfigError, load


def test_flags_beat_env_beat_toml_beat_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        'server = "http://toml"\nwindow_s = 30\nsite = "paris-dc"\n[x]\n'.replace("[x]\n", "")
    )
    env = {"GREENKPI_CONFIG": str(toml), "GREENKPI_WINDOW_S": "20", "GREENKPI_SERVER": "http://env"}
    config = load({"server": "http://flag"}, env)
    assert (config.server, config.window_s, config.site, config.sample_interval_s) == (
        "http://flag",
        20.0,
        "paris-dc",
        1.0,
    )
    sources = dict(config.sources)
    assert sources["server"] == "command line" and sources["window_s"] == "GREENKPI_WINDOW_S"
    assert sources["site"] == str(toml) and sources["sample_interval_s"] == "default"


def test_bad_values_fail_at_start_naming_the_setting_and_origin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="window_s from GREENKPI_WINDOW_S must be a float"):
        load({}, {"GREENKPI_WINDOW_S": "soon"})
    with pytest.raises(ConfigError, match="gpu from --gpu must be one of"):
        load({"gpu": "amd"}, {})
    with pytest.raises(ConfigError, match="at most 3600"):
        load({"window_s": "7200"}, {})
    toml = tmp_path / "c.toml"
    toml.write_text("windw_s = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'windw_s'"):
        load({"config": str(toml)}, {})


def test_the_token_never_comes_from_argv_or_the_toml(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["run", "--token", "gkc_secret"])
    toml = tmp_path / "c.toml"
    toml.write_text('token = "gkc_secret"\n')
    with pytest.raises(ConfigError, match="not here"):
        load({"config": str(toml)}, {})


def test_the_token_is_read_from_env_or_a_private_file_at_each_use(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("GREENKPI_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("gkc_one\n")
    token_file.chmod(0o600)
    config = load({"token_file": str(token_file)}, {})
    assert config.token() == "gkc_one"
    token_file.write_text("gkc_two\n")  # rotated: picked up without a restart
    assert config.token() == "gkc_two"
    token_file.chmod(0o666)
    with pytest.raises(ConfigError, match="writable by others"):
        config.token()
    monkeypatch.setenv("GREENKPI_TOKEN", "gkc_env")
    assert config.token() == "gkc_env"


def test_the_collector_never_imports_django_or_the_backend() -> None:
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("django", "greenkpi", "rest_framework"):
                    raise ImportError(f"collector imported {name}")
        sys.meta_path.insert(0, Block())
        import greenkpi_collector, greenkpi_collector.cli, greenkpi_collector.agent
        import greenkpi_collector.check, greenkpi_collector.sources.sim
        from greenkpi_collector.cli import main
        assert main(["version"]) == 0
        print("clean")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("clean")


@pytest.mark.slow
def test_check_writes_nothing_and_says_missing_not_unwritable(tmp_path: Path) -> None:
    """A diagnosis writes nothing (issue 12): no spool, no registry, no state directory created;
    what the agent will create is reported "missing", not "not writable"."""
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENKPI_")}
    env.update(GREENKPI_STATE_DIR=str(state), GREENKPI_RAPL_ROOT=str(tmp_path / "none"))
    done = subprocess.run(
        [COLLECTOR, "check", "--gpu", "off"], capture_output=True, text=True, timeout=60, env=env
    )
    out = done.stdout
    assert not state.exists(), f"check created {sorted(p.name for p in state.rglob('*'))}"
    assert f"spool: {state / 'spool.sqlite3'} missing" in out
    assert f"attribution registry: {state / 'registry'} missing" in out
    assert "not writable" not in out.lower()

    from greenkpi_collector.spool import Spool

    Spool(state / "spool.sqlite3").close()  # what the agent leaves behind
    before = {p: p.stat().st_mtime_ns for p in state.rglob("*")}
    done = subprocess.run(
        [COLLECTOR, "check", "--gpu", "off"], capture_output=True, text=True, timeout=60, env=env
    )
    assert "0 sample(s) waiting" in done.stdout, done.stdout + done.stderr
    assert {p: p.stat().st_mtime_ns for p in state.rglob("*")} == before


def test_check_says_what_it_can_measure_and_why_not(tmp_path: Path, scripted_server) -> None:
    scripted_server.script = [(400, {}, {"title": "Idempotency-Key required"}, 0)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENKPI_")}
    env.update(
        GREENKPI_SERVER=scripted_server.url,
        GREENKPI_TOKEN="gkc_x",
        GREENKPI_STATE_DIR=str(tmp_path),
        GREENKPI_RAPL_ROOT=str(tmp_path / "none"),
    )
    done = subprocess.run(
        [COLLECTOR, "check"], capture_output=True, text=True, timeout=60, env=env, cwd=REPO
    )
    out = done.stdout
    assert "GPU: not measured: NVML could not start" in out or "GPU: GPU-" in out
    assert "CPU/DRAM: estimated from TDP x load, because: no RAPL powercap tree" in out
    assert "token: ok" in out and "clock: this host differs from the server by" in out
    assert done.returncode == 0, out + done.stderr
    scripted_server.script = [(401, {}, {"detail": "bad"}, 0)]
    done = subprocess.run(
        [COLLECTOR, "check", "--gpu", "sim"], capture_output=True, text=True, timeout=60, env=env
    )
    assert "token rejected (HTTP 401)" in done.stdout and done.returncode == 1
    assert "GPU: GPU-" in done.stdout and "energy counter" in done.stdout
