"""The storefront's edge header (#22 item 5) names its hosts, and Cloudflare limits a rule's expression to 4,096
characters (developers.cloudflare.com/ruleset-engine/rules-language/expressions/): a thousand tenants' hosts go
into as many rules as fit, each within the limit, together naming every host once."""

from __future__ import annotations

import re

from components import edge
from stacks.cloudflare import EXPRESSION_MAX_CHARS


def test_a_thousand_tenants_hosts_are_split_into_rules_within_cloudflares_limit() -> None:
    hosts = [f"loja{i:04d}.acme-commerce.com" for i in range(1000)] + [f"www.loja{i:03d}.com.br" for i in range(334)]
    chunks = edge._host_chunks(hosts)  # pyright: ignore[reportPrivateUsage]
    expressions = [f"http.host in {edge._host_set(c)}" for c in chunks]  # pyright: ignore[reportPrivateUsage]
    assert len(chunks) > 1
    assert all(len(e) <= EXPRESSION_MAX_CHARS for e in expressions)
    named = [h for e in expressions for h in re.findall(r'"([^"]*)"', e)]
    assert sorted(named) == sorted(hosts)
    assert edge.EXPRESSION_MAX_CHARS == EXPRESSION_MAX_CHARS


def test_a_few_tenants_stay_one_rule() -> None:
    assert len(edge._host_chunks(["a.acme-commerce.com", "b.acme-commerce.com"])) == 1  # pyright: ignore[reportPrivateUsage]
