"""`python -m engine serve|dev|smoke|migrate`.

`serve` does not migrate: PocketBase's image applies the engine's schema and account at its own start
(engine/schema.py, components/pocketbase/pb_hooks/engine_schema.pb.js, #11.2); on PostgreSQL (STORAGE=postgres)
`migrate` applies it as its own step, as the migrator account (engine/migrate.py, #26).

`serve` listens at once, whatever PocketBase does (#20.1): `/healthz` (liveness, and Cloud Run's startup
probe, components/backends/cloudrun.py) answers 200 from the start; `/readyz` answers the 503 problem naming
the dependency that does not serve and why (connection refused, no answer, the engine's account refused, a
collection missing) until PocketBase serves the engine's schema, then 200, without a restart; requests that
need PocketBase answer the documented 503 problem meanwhile. prod's standby engine points at a PocketBase
stopped by design: it must start and wait, not exit. After POCKETBASE_START_WAIT_SECONDS of not ready it
logs once what to check (api._watch_start).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (workers from WEB_CONCURRENCY)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    dev = commands.add_parser("dev", help="PocketBase, Redis and the engine on free ports, one demo tenant")
    dev.add_argument("--data", help="keep the data in this directory (default: a temporary one)")
    dev.add_argument("--storage", choices=("pocketbase", "postgres"), default="pocketbase",
                     help="the order store: PocketBase (default) or a local PostgreSQL, migrated as its own step")
    commands.add_parser("migrate", help="apply the PostgreSQL schema as the migrator and grant the engine's role "
                        "(engine/migrate.py)")
    smoke = commands.add_parser("smoke", help="a deployed engine end to end through its edge URL (engine/smoke.py)")
    smoke.add_argument("--url", required=True, help="the API's URL, e.g. https://api.<zone> (the edge)")
    smoke.add_argument("--tenant", required=True, help="the tenant's slug (its public catalog is read)")
    smoke.add_argument("--admin-key", required=True, help="the tenant's admin key (or $SMOKE_ADMIN_KEY: '-')")
    smoke.add_argument("--api-key", help="the tenant's API key for orders (default: the admin key)")
    smoke.add_argument("--catalog-wait", type=float, default=90.0, help="seconds the edge may take to show a write")
    args = parser.parse_args(argv)

    if args.command == "serve":
        from engine.settings import Settings

        settings = Settings()  # pyright: ignore[reportCallIssue]
        _clear_worker_metrics()
        print(_purge_notice(settings), file=sys.stderr, flush=True)
        # engine/server.py: the requests read before bytes that are not HTTP are answered first (#23.5).
        serve_both(args.host, args.port, settings.internal_port, settings.web_concurrency)
        return 0
    if args.command == "smoke":
        from engine.smoke import main as smoke_main

        admin_key = os.environ.get("SMOKE_ADMIN_KEY", "") if args.admin_key == "-" else args.admin_key
        return smoke_main(args.url, args.tenant, admin_key, args.api_key, args.catalog_wait)
    if args.command == "migrate":
        from engine.migrate import main as migrate_main

        return migrate_main()
    from engine.dev import run_dev

    return run_dev(args.data, args.storage)


def serve_both(host: str, port: int, internal_port: int | None, workers: int) -> None:
    """uvicorn on the public port and, with INTERNAL_PORT, on the private one too: the same application and
    workers; `scope["server"]` tells api.EdgeGuard which listener a connection came in on."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # engine/server.py: the requests read before bytes that are not HTTP are answered first (#23.5).
    options: dict[str, object] = {"factory": True, "host": host, "workers": workers, "access_log": False,
                                  "log_level": "warning", "http": "engine.server:HttpProtocol"}
    if internal_port is None:
        uvicorn.run("engine.api:app_from_env", port=port, **options)  # pyright: ignore[reportArgumentType]
        return
    config = uvicorn.Config("engine.api:app_from_env", port=port, **options)  # pyright: ignore[reportArgumentType]
    private = uvicorn.Config("engine.api:app_from_env", port=internal_port, **options)  # pyright: ignore[reportArgumentType]
    sockets = [config.bind_socket(), private.bind_socket()]
    if config.workers > 1:
        Multiprocess(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)


def _purge_notice(settings: Settings) -> str:
    """Once per server, at start: whether product writes purge the catalog from the edge (names only, no values)."""
    if missing := settings.catalog_purge_missing:
        return (f"catalog purge: off, {', '.join(missing)} unset; the edge keeps each catalog until its "
                f"{settings.edge_seconds} s expire (normal in local and dev)")
    return (f"catalog purge: on, {(settings.catalog_public_base_url or '').rstrip('/')}/v1/catalog/<tenant> "
            f"in zone {settings.cloudflare_zone_id} through {settings.cloudflare_api_url}")


def _clear_worker_metrics() -> None:
    """prometheus-client's multiprocess files must not outlive the server that wrote them: after a
    container restart they would add the dead workers' counts and in-flight gauges to the new ones."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


if __name__ == "__main__":
    sys.exit(main())
