"""`python -m engine serve|dev|smoke`.

The engine does not migrate: PocketBase's image applies the engine's schema and account at its own start
(engine/schema.py, components/pocketbase/pb_hooks/engine_schema.pb.js), and `serve` waits for them (#11.2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
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
    smoke = commands.add_parser("smoke", help="a deployed engine end to end through its edge URL (engine/smoke.py)")
    smoke.add_argument("--url", required=True, help="the API's URL, e.g. https://api.<zone> (the edge)")
    smoke.add_argument("--tenant", required=True, help="the tenant's slug (its public catalog is read)")
    smoke.add_argument("--admin-key", required=True, help="the tenant's admin key (or $SMOKE_ADMIN_KEY: '-')")
    smoke.add_argument("--api-key", help="the tenant's API key for orders (default: the admin key)")
    smoke.add_argument("--catalog-wait", type=float, default=90.0, help="seconds the edge may take to show a write")
    args = parser.parse_args(argv)

    if args.command == "serve":
        import uvicorn

        from engine.settings import Settings

        settings = Settings()  # pyright: ignore[reportCallIssue]
        # PocketBase first, with the engine's collections: a new deployment may start the engine before
        # PocketBase, which applies them as it starts.
        if (code := asyncio.run(_wait_for_schema(settings, settings.pocketbase_start_wait_seconds))) != 0:
            return code
        _clear_worker_metrics()
        print(_purge_notice(settings), file=sys.stderr, flush=True)
        uvicorn.run("engine.api:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=settings.web_concurrency, access_log=False, log_level="warning")
        return 0
    if args.command == "smoke":
        from engine.smoke import main as smoke_main

        admin_key = os.environ.get("SMOKE_ADMIN_KEY", "") if args.admin_key == "-" else args.admin_key
        return smoke_main(args.url, args.tenant, admin_key, args.api_key, args.catalog_wait)
    from engine.dev import run_dev

    return run_dev(args.data)


async def _wait_for_schema(settings: Settings, wait_s: float) -> int:
    """Until PocketBase accepts the engine's account and has all its collections, for up to `wait_s`; then
    what is missing, and 1. Reads records only: the engine holds no right to change the schema."""
    from engine.adapters.pocketbase import PocketBase, PocketBaseError
    from engine.schema import ACCOUNTS, missing

    pocketbase = PocketBase(settings.pocketbase_url, ACCOUNTS, settings.pocketbase_email,
                            settings.pocketbase_password)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                problem = ""
                if absent := await missing(pocketbase):
                    problem = f"PocketBase has no collection {', '.join(absent)}"
            except PocketBaseError as err:
                problem = str(err)
            if not problem:
                return 0
            if time.monotonic() >= deadline:
                print(f"serve: {problem} (POCKETBASE_URL={settings.pocketbase_url}, still so after {wait_s:.0f} s). "
                      f"PocketBase's image applies the engine's collections and its account in {ACCOUNTS} at its "
                      "start (pb_hooks/engine_schema.pb.js with engine_schema.json, from PB_ENGINE_EMAIL and "
                      "PB_ENGINE_PASSWORD): is it that image, of this engine's version, given the password the "
                      "engine has as POCKETBASE_PASSWORD?", file=sys.stderr)
                return 1
            await asyncio.sleep(1.0)
    finally:
        await pocketbase.close()


def _purge_notice(settings: Settings) -> str:
    """Once per server, at start: whether product writes purge the catalog from the edge (names only, no values)."""
    if missing := settings.catalog_purge_missing:
        return (f"catalog purge: off, {', '.join(missing)} unset; the edge keeps each catalog until its "
                f"{settings.catalog_cache_seconds} s expire (normal in local and dev)")
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
