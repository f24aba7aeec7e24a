"""Real-user web vitals (A1, U1-U4): beacons from the storefront, recorded as Prometheus histograms.

Browsers send them without a key (`navigator.sendBeacon`, `text/plain` so no CORS preflight), so
everything is checked: the tenant must be in the registry, the route must be a route template (its
label must not grow with every product URL), each value must be plausible, and each client address
gets a budget of beacons per minute.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

from prometheus_client import Histogram

ROUTE = re.compile(r"/[A-Za-z0-9_\-/\[\]\.]{0,99}", re.ASCII)
"""Used with fullmatch: a route ending in a newline is not a route (`$` would let it through)."""
MAX_ROUTES_PER_TENANT = 200

# name -> (histogram, largest plausible value, unit divisor); thresholds of U1-U4 are bucket edges.
HISTOGRAMS: dict[str, tuple[Histogram, float, float]] = {
    "LCP": (Histogram("web_vitals_lcp_seconds", "Largest Contentful Paint", ["tenant", "route"],
                      buckets=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)), 60_000, 1000),
    "INP": (Histogram("web_vitals_inp_seconds", "Interaction to Next Paint (FID's successor)", ["tenant", "route"],
                      buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)), 60_000, 1000),
    "TTFB": (Histogram("web_vitals_ttfb_seconds", "Time to First Byte", ["tenant", "route"],
                       buckets=(0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 1.8, 3.0)), 60_000, 1000),
    "CLS": (Histogram("web_vitals_cls", "Cumulative Layout Shift", ["tenant", "route"],
                      buckets=(0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0)), 10, 1),
}


class BeaconError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Measurement:
    name: str
    value: float


def validate(tenant: Any, route: Any, metrics: Any, tenants: set[str]) -> tuple[str, str, list[Measurement]]:
    """The beacon's tenant, route and measurements, or a `BeaconError` naming the bad field."""
    if not isinstance(tenant, str) or tenant not in tenants:
        raise BeaconError("tenant", f"{tenant!r} is not a tenant of the platform")
    if not isinstance(route, str) or not ROUTE.fullmatch(route):
        raise BeaconError("route", f"{route!r}; expected a route template such as /produto/[slug]")
    if not isinstance(metrics, list) or not 1 <= len(cast(list[Any], metrics)) <= 10:
        raise BeaconError("metrics", "expected a list of 1 to 10 {name, value} entries")
    measurements: list[Measurement] = []
    for i, entry in enumerate(cast(list[Any], metrics)):
        fields = cast(dict[str, Any], entry) if isinstance(entry, dict) else {}
        name, value = fields.get("name"), fields.get("value")
        if name not in HISTOGRAMS:
            raise BeaconError(f"metrics[{i}].name", f"{name!r}; expected one of {', '.join(HISTOGRAMS)}")
        largest = HISTOGRAMS[name][1]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= largest:
            raise BeaconError(f"metrics[{i}].value", f"{value!r}; expected a number from 0 to {largest:g}")
        measurements.append(Measurement(name, float(value)))
    return tenant, route, measurements


class Recorder:
    """Records measurements; bounds the routes per tenant and the beacons per client per minute."""

    def __init__(self, per_client_per_minute: int = 120, clients: int = 10_000) -> None:
        self._limit = per_client_per_minute
        self._windows: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._clients = clients
        self._routes: dict[str, set[str]] = {}

    def allow(self, client: str) -> bool:
        minute = int(time.monotonic() // 60)
        window, count = self._windows.pop(client, (minute, 0))
        count = count + 1 if window == minute else 1
        self._windows[client] = (minute, count)
        if len(self._windows) > self._clients:
            self._windows.popitem(last=False)
        return count <= self._limit

    def record(self, tenant: str, route: str, measurements: list[Measurement]) -> None:
        routes = self._routes.setdefault(tenant, set())
        if route not in routes and len(routes) >= MAX_ROUTES_PER_TENANT:
            route = "other"
        routes.add(route)
        for m in measurements:
            histogram, _, divisor = HISTOGRAMS[m.name]
            histogram.labels(tenant, route).observe(m.value / divisor)
