"""The `dni-gateway` command: serve, migrate, and the tools later issues add.

`serve --demo` is the first README command: embedded PostgreSQL, the demo site, and a printed
admin key when none is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway import log, purge_cli, report_cli
from gateway.settings import Settings, SettingsError, from_env

DEMO_CONFIG = Path(__file__).with_name("demo.toml")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dni-gateway", description="Call-tracking edge gateway.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="listen address (overrides DNI_HOST)")
    serve.add_argument("--port", type=int, help="listen port (overrides DNI_PORT)")
    serve.add_argument("--config", type=Path, help="site config (TOML) imported at start")
    serve.add_argument("--demo", action="store_true", help="load the demo site and print hints")
    serve.add_argument("--workers", type=_workers, default=1,
                       help="worker processes sharing the ports and one database (default 1)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    check = sub.add_parser("check-config", help="validate a site config file and exit")
    check.add_argument("path", type=Path)
    report_cli.add_parser(sub)
    purge_cli.add_parser(sub)
    sub.add_parser("simulate", add_help=False,
                   help="replay simulated traffic through the engine and measure attribution "
                   "accuracy (dni-gateway simulate --help)")
    return p


def _workers(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {raw!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"must be between 1 and 64, got {value}")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    settings = from_env()
    changes: dict[str, object] = {}
    if getattr(args, "host", None):
        changes["host"] = args.host
    if getattr(args, "port", None) is not None:
        changes["port"] = args.port
    return settings.with_overrides(**changes) if changes else settings


def _banner(settings: Settings, admin_key: str, generated: bool) -> None:
    base = f"http://{settings.host}:{settings.port}"
    lines = [
        f"dni-gateway listening on {base}",
        f"  health:   {base}/healthz   readiness: {base}/readyz   metrics: {base}/metrics",
        f"  API doc:  {base}/v1/openapi.json   demo page (swap.js at work): {base}/demo",
        f"  dashboard: {base}/ui  (sign in with the admin key)",
        f"  try:      curl -s -X POST {base}/v1/swap -H 'Content-Type: application/json' -d "
        "'{\"site\":\"demo\",\"url\":\"https://demo.test/?gclid=abc\",\"referrer\":null}'",
    ]
    if generated:
        lines.append("  admin key (generated for this run; set DNI_ADMIN_KEY to fix it): "
                     + admin_key)
        lines.append(f"  e.g.:     curl -s -H 'Authorization: Bearer {admin_key}' {base}/v1/sites")
    print("\n".join(lines), flush=True)


def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.app import create_app
    from gateway.web.keys import STATE

    settings = _settings(args)
    log.configure(settings.log_format, settings.log_level)
    config = DEMO_CONFIG if args.demo and args.config is None else args.config
    if config is not None:
        from gateway.configfile import read

        read(config)  # fail fast, before the database starts, naming the bad entry
    if args.workers > 1:
        from gateway.supervisor import Supervisor

        return Supervisor(settings, args.workers, config, _banner).run()
    app = create_app(settings, config_path=config)

    async def announce(app: web.Application) -> None:
        _banner(settings, app[STATE].admin_key, settings.admin_key is None)

    if settings.worker_index is None:  # a supervised worker: the supervisor prints it once
        app.on_startup.append(announce)
    _install_uvloop()
    web.run_app(app, host=settings.host, port=settings.port, print=None,
                shutdown_timeout=settings.shutdown_grace_s, access_log=None,
                keepalive_timeout=settings.http_idle_timeout_s, handle_signals=True,
                reuse_port=settings.reuse_port or None)
    return 0


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def migrate(args: argparse.Namespace) -> int:
    from gateway.store import migrate as migrations
    from gateway.store.db import configured_pool

    settings = _settings(args)
    log.configure(settings.log_format, settings.log_level)

    async def run() -> list[str]:
        async with configured_pool(settings) as pool, pool.acquire() as conn:
            return await migrations.apply(conn)

    applied = asyncio.run(run())
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'up to date'}")
    return 0


def check_config(args: argparse.Namespace) -> int:
    from gateway.configfile import read

    config = read(args.path)
    print(f"{args.path}: ok, {len(config['sites'])} site(s)")
    return 0


COMMANDS = {"serve": serve, "migrate": migrate, "check-config": check_config,
            "report": report_cli.run, "purge": purge_cli.run}


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["simulate"]:  # the simulator has its own options (scoring.simulate)
        from scoring import simulate

        return simulate.main(given[1:])
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SettingsError as exc:
        print(f"dni-gateway: invalid setting {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from gateway.configfile import ConfigFileError

        if isinstance(exc, ConfigFileError):
            print(f"dni-gateway: {exc}", file=sys.stderr)
            return 2
        raise
