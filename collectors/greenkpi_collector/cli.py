"""``greenkpi-collector``: run | check | spool | wrap | version."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from greenkpi_collector import __version__
from greenkpi_collector.config import OPTIONS, Config, ConfigError, load
from greenkpi_collector.sources.base import SourceUnavailable


def _add_options(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    parser.add_argument("--config", help="TOML config file (or GREENKPI_CONFIG)")
    for option in OPTIONS:
        if names is not None and option.name not in names:
            continue
        parser.add_argument(
            f"--{option.name.replace('_', '-')}",
            dest=option.name,
            default=None,
            choices=option.choices or None,
            help=f"{option.help} [env GREENKPI_{option.name.upper()}; default {option.default}]",
        )


def parser() -> argparse.ArgumentParser:
    # No abbreviations: `--token X` must not silently become `--token-file X`.
    p = argparse.ArgumentParser(
        prog="greenkpi-collector",
        allow_abbrev=False,
        description="Measure GPU, CPU and DRAM energy and send it to GreenKPI. The token comes "
        "from GREENKPI_TOKEN or a token file, never from the command line.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    _add_options(
        sub.add_parser("run", allow_abbrev=False, help="measure and send until stopped (SIGTERM)")
    )
    _add_options(
        sub.add_parser(
            "check", allow_abbrev=False, help="say what can be measured here, and why not"
        )
    )
    spool = sub.add_parser(
        "spool", allow_abbrev=False, help="show what waits to be sent, and dead letters"
    )
    _add_options(spool, ["state_dir", "log_level"])
    spool.add_argument("--json", action="store_true", help="machine-readable output")
    spool.add_argument("--requeue-dead", action="store_true", help="send dead letters again")
    wrap = sub.add_parser(
        "wrap", allow_abbrev=False, help="run a command with its GPU energy attributed"
    )
    wrap.add_argument("--team", required=True, help="team slug in GreenKPI")
    wrap.add_argument("--model", help="model name")
    wrap.add_argument("--run", dest="run_id", help="run id")
    wrap.add_argument("--tag", action="append", default=[], help="KEY=VALUE (repeatable)")
    wrap.add_argument("--registry-dir", help="env GREENKPI_REGISTRY_DIR")
    wrap.add_argument(
        "--budget-kwh",
        type=float,
        help="energy budget of the job; over it (and the job succeeded): exit 86 (docs/ci.md)",
    )
    wrap.add_argument("--budget-gco2e", type=float, help="CO2e budget in grams; over it: exit 86")
    wrap.add_argument(
        "--grid-intensity",
        type=float,
        help="gCO2e per kWh for the CO2e estimate (env GREENKPI_GRID_INTENSITY; default the "
        "world average, 458.29)",
    )
    wrap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")
    sub.add_parser("version", allow_abbrev=False, help="print the version")
    return p


def _config(args: argparse.Namespace) -> Config:
    flags: dict[str, Any] = {k: v for k, v in vars(args).items() if k != "command"}
    return load(flags)


def _spool(config: Config, as_json: bool, requeue: bool) -> int:
    from greenkpi_collector.spool import Spool

    if not config.spool_path.exists():
        print(f"no spool at {config.spool_path} (the collector has not run here)")
        return 1
    spool = Spool(config.spool_path)
    if requeue:
        print(f"requeued {spool.requeue_dead()} dead batch(es)")
    stats = spool.stats()
    dead = spool.dead_letters()
    if as_json:
        print(json.dumps({**stats.__dict__, "depth": stats.depth, "dead": dead}, indent=2))
        return 0
    age = f", oldest {time.time() - stats.oldest_created:.0f} s old" if stats.oldest_created else ""
    print(f"spool {config.spool_path}")
    print(
        f"  waiting: {stats.depth} sample(s): {stats.pending_windows} not yet batched, "
        f"{stats.outbox_samples} in {stats.outbox_batches} batch(es){age}"
    )
    print(
        f"  measured since install: {stats.measured_windows}; dropped (quota/disk): "
        f"{stats.dropped_windows}; payload {stats.payload_bytes / 2**20:.2f} MiB "
        f"of {config.spool_max_mb:.0f} MiB"
    )
    print(f"  dead letters: {stats.dead_batches} batch(es), {stats.dead_samples} sample(s)")
    for d in dead:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["created"]))
        print(f"    {when} HTTP {d['status'] or '-'} {d['samples']} sample(s): {d['error']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    if args.command == "wrap":
        from greenkpi_collector.tracking import Budget, wrap

        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            print("wrap: give the command after --", file=sys.stderr)
            return 2
        tags = dict(t.split("=", 1) for t in args.tag if "=" in t)
        budget = Budget(args.budget_kwh, args.budget_gco2e, args.grid_intensity)
        for name, value in vars(args).items():
            if name.startswith(("budget_", "grid_")) and value is not None and not value >= 0:
                print(f"wrap: --{name.replace('_', '-')} must be a number >= 0", file=sys.stderr)
                return 2
        return wrap(
            cmd,
            team=args.team,
            model=args.model,
            run=args.run_id,
            tags=tags,
            directory=args.registry_dir,
            budget=budget if budget.set or args.grid_intensity is not None else None,
        )
    try:
        config = _config(args)
        logging.basicConfig(
            level=config.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        if args.command == "check":
            from greenkpi_collector.check import run_check

            return run_check(config)
        if args.command == "spool":
            return _spool(config, args.json, args.requeue_dead)
        from greenkpi_collector.agent import Agent

        return Agent(config).run()
    except (ConfigError, SourceUnavailable) as exc:
        print(f"greenkpi-collector: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
