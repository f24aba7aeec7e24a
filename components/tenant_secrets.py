"""Each tenant's API and admin keys where they are read, never in a stack output (#22 item 6).

A stack output is readable by anyone with Stack Read (`pulumi stack output --show-secrets`), and the deploy
job read every tenant's keys to smoke-test with one. On a stack with a Google Cloud project each tenant's keys
go to a Secret Manager secret of their own, `tenant-<slug>-keys` (JSON `{"apiKey": ..., "adminKey": ...}`),
read one at a time by `python -m infra tenant-keys` (the deploy job's smoke test; onboarding).

Who reads them: no grant is made on these secrets, so only project-level Secret Manager access reads a version
(`secretmanager.versions.access`, cloud.google.com/secret-manager/docs/access-control): the bootstrap's deploy
account (`deploy@PROJECT`, infra/bootstrap, which writes them and so holds them anyway) and the project's
administrators. The engine holds only the keys' hashes (components/api.py) and its account, like every
workload's, is granted only its own secrets, one grant per secret (components/backends/gce.py, cloudrun.py);
`roles/viewer` (the preview account) reads no payload. A per-secret grant to the deploy account would be
refused by PLAT-IAM-002 (grants only to accounts this stack declares): the deploy account is the bootstrap's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pulumi
import pulumi_gcp as gcp

from components.api import TenantKeys


def tenant_secret_id(slug: str) -> str:
    return f"tenant-{slug}-keys"


def keys_document(api_key: str, admin_key: str) -> str:
    return json.dumps({"apiKey": api_key, "adminKey": admin_key}, sort_keys=True)


def declare_tenant_secrets(project: str, environment: str, keys: Mapping[str, TenantKeys]) -> None:
    for slug, tenant in sorted(keys.items()):
        secret_id = tenant_secret_id(slug)
        secret = gcp.secretmanager.Secret(
            secret_id, project=project, secret_id=secret_id, replication={"auto": {}},
            labels={"platform-environment": environment, "platform-tenant": slug})
        gcp.secretmanager.SecretVersion(
            f"{secret_id}-v", secret=secret.id,
            secret_data=pulumi.Output.secret(pulumi.Output.all(tenant.api_key, tenant.admin_key).apply(
                lambda pair: keys_document(pair[0], pair[1]))))
