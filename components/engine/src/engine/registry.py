"""The tenant registry: which tenant an API key belongs to, and with which scope.

Keys are never stored: the registry holds their SHA-256 hashes (`sha256:<hex>`), built by the
platform from the stack's `platform:tenants`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Tenant:
    slug: str
    currency: str


@dataclass(frozen=True)
class Principal:
    tenant: Tenant
    admin: bool


def key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class TenantRegistry:
    def __init__(self, principals: dict[str, Principal]) -> None:
        self._by_hash = principals

    @classmethod
    def from_json(cls, document: str) -> TenantRegistry:
        data = json.loads(document)
        if data.get("version") != 1:
            raise ValueError(f"tenant registry version {data.get('version')!r}; expected 1")
        principals: dict[str, Principal] = {}
        for entry in data["tenants"]:
            tenant = Tenant(entry["slug"], entry["currency"])
            principals |= {h: Principal(tenant, admin=False) for h in entry["api_key_hashes"]}
            principals |= {h: Principal(tenant, admin=True) for h in entry["admin_key_hashes"]}
        return cls(principals)

    def authenticate(self, key: str) -> Principal | None:
        return self._by_hash.get(key_hash(key))

    @property
    def tenants(self) -> list[Tenant]:
        return sorted({p.tenant for p in self._by_hash.values()}, key=lambda t: t.slug)
