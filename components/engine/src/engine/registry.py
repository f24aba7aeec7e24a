"""The tenant registry: which tenant an API key belongs to, and with which scope.

Keys are never stored: the registry holds their SHA-256 hashes (`sha256:<hex>`), built by the
platform from the stack's `platform:tenants`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Tenant:
    slug: str
    currency: str


@dataclass(frozen=True)
class Principal:
    tenant: Tenant
    admin: bool
    key_id: str = ""
    """The key's id in audit events (engine.audit): `sha256:` and 12 hex digits of its hash, never the key."""


def key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class TenantRegistry:
    def __init__(self, principals: dict[str, Principal]) -> None:
        self._by_hash = principals

    @classmethod
    def from_json(cls, document: str) -> TenantRegistry:
        return cls.from_documents([document])

    @classmethod
    def from_documents(cls, documents: Iterable[str]) -> TenantRegistry:
        """One registry from its shards (the platform writes a hundred tenants to a document)."""
        principals: dict[str, Principal] = {}
        for document in documents:
            data = json.loads(document)
            if data.get("version") != 1:
                raise ValueError(f"tenant registry version {data.get('version')!r}; expected 1")
            for entry in data["tenants"]:
                tenant = Tenant(entry["slug"], entry["currency"])
                for key_hash_, admin in [*((h, False) for h in entry["api_key_hashes"]),
                                         *((h, True) for h in entry["admin_key_hashes"])]:
                    if key_hash_ in principals and principals[key_hash_].tenant != tenant:
                        raise ValueError(f"a key hash is claimed by tenants {principals[key_hash_].tenant.slug!r} "
                                         f"and {tenant.slug!r}")
                    principals[key_hash_] = Principal(tenant, admin=admin, key_id=key_hash_[:19])
        return cls(principals)

    def authenticate(self, key: str) -> Principal | None:
        return self._by_hash.get(key_hash(key))

    @property
    def tenants(self) -> list[Tenant]:
        return sorted({p.tenant for p in self._by_hash.values()}, key=lambda t: t.slug)


def shard_documents(environ: Mapping[str, str]) -> list[str]:
    """The registry's further shards, `TENANTS_JSON_2`, `TENANTS_JSON_3`, ... while they exist
    (components/api.py writes them; `TENANTS_JSON` is the first, read with the other settings)."""
    documents: list[str] = []
    while (document := environ.get(f"TENANTS_JSON_{len(documents) + 2}")) is not None:
        documents.append(document)
    return documents
