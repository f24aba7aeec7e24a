"""`python -m engine serve|migrate|dev|smoke`."""

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
    commands.add_parser("migrate", help="create or update the PocketBase collections (idempotent)")
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
        # The collections come first: a new deployment starts against an empty PocketBase, which may
        # itself still be starting.
        if (code := asyncio.run(_migrate(settings, wait_s=settings.pocketbase_start_wait_seconds))) != 0:
            return code
        _clear_worker_metrics()
        print(_purge_notice(settings), file=sys.stderr, flush=True)
        uvicorn.run("engine.api:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=settings.web_concurrency, access_log=False, log_level="warning")
        return 0
    if args.command == "migrate":
        from engine.settings import Settings

        return asyncio.run(_migrate(Settings()))  # pyright: ignore[reportCallIssue]
    if args.command == "smoke":
        from engine.smoke import main as smoke_main

        admin_key = os.environ.get("SMOKE_ADMIN_KEY", "") if args.admin_key == "-" else args.admin_key
        return smoke_main(args.url, args.tenant, admin_key, args.api_key, args.catalog_wait)
    from engine.dev import run_dev

    return run_dev(args.data)


async def _migrate(settings: Settings, wait_s: float = 0.0) -> int:
    """Migrate, retrying for up to `wait_s` while PocketBase is unreachable or another instance migrates."""
    from engine.adapters.pocketbase import PocketBase, PocketBaseError
    from engine.migrate import migrate

    pocketbase = PocketBase(settings.pocketbase_url, settings.pocketbase_superuser_email,
                            settings.pocketbase_superuser_password)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                for line in await migrate(pocketbase):
                    print(line, file=sys.stderr)
                return 0
            except PocketBaseError as err:
                if time.monotonic() >= deadline:
                    waited = f", still failing after {wait_s:.0f} s" if wait_s else ""
                    print(f"migrate: {err} (POCKETBASE_URL={settings.pocketbase_url}{waited})", file=sys.stderr)
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
