"""PLAT-TLS-001: the zone encrypts to the origin with a valid certificate (Full strict), TLS 1.2 or newer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict

EXPECTED = {"ssl": {"strict"}, "min_tls_version": {"1.2", "1.3"}, "tls_1_3": {"on", "zrt"}}


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type != "cloudflare:index/zoneSetting:ZoneSetting":
        return NotApplicable("not a zone setting")
    setting = str(resource.props.get("settingId"))
    if setting not in EXPECTED:
        return NotApplicable(f"{setting} is not a TLS setting")
    value = resource.props.get("value")
    if value not in EXPECTED[setting]:
        return [f"{setting} is {value!r}; expected {' or '.join(sorted(EXPECTED[setting]))}"]
    return []
