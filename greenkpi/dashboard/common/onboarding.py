"""What a new organisation is told to run on its first ML host.

Mirrors docs/collector.md (the collector's own install guide): a venv under /opt, the token in a
root-only file passed with --token-file (never the token itself on the command line, where every
user can read it in /proc). Keep the two in step; these lines are shown verbatim on empty pages.
"""

from __future__ import annotations

VENV = "/opt/greenkpi-collector"
TOKEN_DIR = "/etc/greenkpi-collector"
TOKEN_FILE = f"{TOKEN_DIR}/token"


def collector_commands(server_url: str) -> list[str]:
    """Shell lines, in order, that install the collector and start it against ``server_url``.

    Root, because RAPL energy counters are readable only by root on current kernels; the venv's
    full path, so ``sudo`` finds the same executable whatever its secure_path.
    """
    collector = f"sudo {VENV}/bin/greenkpi-collector"
    flags = f"--server {server_url} --token-file {TOKEN_FILE}"
    return [
        f"sudo python3 -m venv {VENV}",
        f'sudo {VENV}/bin/pip install "greenkpi[collector]"',
        f"sudo install -d -m 700 {TOKEN_DIR}",
        f"sudoedit {TOKEN_FILE}   # paste the collector token, save",
        f"sudo chmod 600 {TOKEN_FILE}",
        f"{collector} check {flags}",
        f"{collector} run {flags}",
    ]
