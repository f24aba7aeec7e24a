"""How much one `pulumi up` may change at each provider without tripping its API's rate limit.

Pulumi creates resources as fast as `--parallel` allows; a provider past its limit answers 429 and the
run fails halfway (Cloudflare then blocks "all API calls for the next five minutes"). So a change is
sized before it deploys: `python -m infra plan --diff-against` (the pull-request job) refuses one
that needs more calls than a provider allows in the time a deploy takes, and says how to split it.

Sources:
- Cloudflare: "The global rate limit for the Cloudflare API is 1200 requests per five minute period
  per user" (https://developers.cloudflare.com/fundamentals/api/reference/limits/). Each create,
  update or delete of a ruleset, record, custom hostname or token is one request
  (terraform-provider-cloudflare internal/services/*/resource.go: one SDK call per method); a sixth
  of the budget stays free for reads and for whatever else shares the user.
- Vercel: "Domain addition: 100 requests per hour per team", "Domain removal: 100 requests per hour
  per team" (https://vercel.com/docs/multi-tenant/limits).
- Secret Manager: writes 600 per minute per project (https://cloud.google.com/secret-manager/quotas).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    provider: str
    """The type-token prefix of the resources it counts (`cloudflare:`, `vercel:index/projectDomain`)."""
    operations: tuple[str, ...]
    """Which changes count: `create`, `update`, `delete`."""
    per_deploy: int
    limit: str
    source: str


BUDGETS: tuple[Budget, ...] = (
    Budget("cloudflare:", ("create", "update", "delete"), 1000,
           "1200 API requests per 5 minutes per user", "https://developers.cloudflare.com/fundamentals/api/reference/limits/"),
    Budget("vercel:index/projectDomain:", ("create",), 100,
           "100 domain additions per hour per team", "https://vercel.com/docs/multi-tenant/limits"),
    Budget("vercel:index/projectDomain:", ("delete",), 100,
           "100 domain removals per hour per team", "https://vercel.com/docs/multi-tenant/limits"),
    Budget("gcp:secretmanager/", ("create", "update", "delete"), 500,
           "600 writes per minute per project", "https://cloud.google.com/secret-manager/quotas"),
)
