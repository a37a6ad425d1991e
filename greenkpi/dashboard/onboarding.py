"""What a new organisation is told to run on its first ML host.

The collector (collectors/, issue 3) reads its token from a file or an environment variable and
never from the command line, so the secret stays out of shell history and `ps`. Keep these lines in
step with the collector's CLI: they are shown verbatim on every empty page.
"""

from __future__ import annotations

TOKEN_FILE = "/etc/greenkpi/token"
TOKEN_FILE_ENV = "GREENKPI_TOKEN_FILE"


VENV = "/opt/greenkpi"


def collector_commands(server_url: str) -> list[str]:
    """Shell lines, in order, that install the collector and start it against ``server_url``.

    Root, because RAPL energy counters are readable only by root on current kernels; a venv under
    /opt, so ``sudo`` finds the same executable whatever its secure_path.
    """
    run = f"sudo env {TOKEN_FILE_ENV}={TOKEN_FILE} {VENV}/bin/greenkpi-collector"
    return [
        f"sudo python3 -m venv {VENV}",
        f'sudo {VENV}/bin/pip install "greenkpi[collector]"',
        f"sudo install -d -m 700 {TOKEN_FILE.rsplit('/', 1)[0]}",
        f"sudoedit {TOKEN_FILE}   # paste the collector token, save",
        f"{run} check --server {server_url}",
        f"{run} run --server {server_url}",
    ]
