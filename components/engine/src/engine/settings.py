"""Settings from the environment. Required secrets have no default; placeholders are refused."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"", "changeme", "change-me", "secret", "password", "placeholder", "todo", "xxx"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, frozen=True)

    environment: str = "local"
    pocketbase_url: str
    pocketbase_email: str
    """The engine's own PocketBase account (engine/schema.py ACCOUNTS), never the superuser (#11.2)."""
    pocketbase_password: str = Field(repr=False)
    redis_url: str = Field(repr=False)
    tenants_json: str = Field(repr=False)
    """The tenant registry the platform builds (components/api.py): slugs, currencies, key hashes."""
    redis_ca_cert: str | None = Field(default=None, repr=False)
    summary_cache_seconds: int = 300
    catalog_cache_seconds: int = 86_400
    """How long Redis keeps a tenant's catalog, rules and affiliates; 0 or less: no copy (every order reads them
    from PocketBase; a rollout's mixed window, README). Also the edge's, unless CATALOG_EDGE_SECONDS is set."""
    catalog_edge_seconds: int | None = None
    """The catalog's `s-maxage` at the edge (C5: a day); unset, CATALOG_CACHE_SECONDS (as the platform sets it)."""
    catalog_browser_seconds: int = 60
    redis_timeout_seconds: float = 0.25
    pocketbase_timeout_seconds: float = 5.0
    pocketbase_start_wait_seconds: float = 45.0
    """How long the engine may find PocketBase not serving its schema before it logs what to check (it serves
    meanwhile: liveness 200, /readyz 503 with the reason, #20.1)."""
    web_concurrency: int = 1
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "commission-engine"
    catalog_public_base_url: str | None = None
    """Where the edge serves the API, e.g. https://api.acme-commerce.com: the catalog's public URL starts so."""
    cloudflare_zone_id: str | None = None
    catalog_purge_token: str | None = Field(default=None, repr=False)
    """A Cloudflare API token with Cache Purge on the zone. Never logged."""
    cloudflare_api_url: str = "https://api.cloudflare.com/client/v4"
    public_hostname: str | None = None
    """`api.<zone>`, the host the edge forwards (informational: the guard does not trust Host, api.EdgeGuard)."""
    internal_port: int | None = Field(default=None, ge=1, le=65535)
    """A second listener serving only /metrics, /healthz and /readyz, to the private network without the edge's
    secret: the telemetry agent and the platform's probes ask it; no load balancer, tunnel or public domain
    forwards to it (api.EdgeGuard). Unset: no second listener."""
    origin_auth_secret: str | None = Field(default=None, repr=False)
    api_docs: bool = False
    """Serve the API's reference at /docs (Swagger UI over /openapi.json): `python -m engine dev` turns it on; a
    deployed engine serves no page of its own beside the API."""
    """The value of `X-Origin-Auth` Cloudflare adds to every request it forwards (components/edge.py)."""

    @property
    def edge_seconds(self) -> int:
        """The edge's copy of a catalog, apart from Redis's: CATALOG_CACHE_SECONDS=0 turns Redis's copy off
        without telling the edge to keep none (#23, second audit)."""
        return self.catalog_cache_seconds if self.catalog_edge_seconds is None else self.catalog_edge_seconds

    @property
    def catalog_purge_missing(self) -> list[str]:
        """The purge settings left unset; purging the edge is off unless this is empty."""
        values = {"CATALOG_PUBLIC_BASE_URL": self.catalog_public_base_url,
                  "CLOUDFLARE_ZONE_ID": self.cloudflare_zone_id, "CATALOG_PURGE_TOKEN": self.catalog_purge_token}
        return [name for name, value in values.items() if not (value or "").strip()]

    @field_validator("pocketbase_password", "redis_url", "tenants_json")
    @classmethod
    def not_a_placeholder(cls, value: str) -> str:
        if value.strip().lower() in PLACEHOLDERS:
            raise ValueError("is a placeholder; set the real secret")
        return value

    @field_validator("catalog_purge_token")
    @classmethod
    def not_a_placeholder_if_set(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and value.strip().lower() in PLACEHOLDERS:
            raise ValueError("is a placeholder; set the real token or leave it unset")
        return value
