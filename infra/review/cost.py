"""What a plan costs a month, priced from what it declares (issue #24, item 5).

The prices are the ones the cost alert uses (components/observability/cost.py `PRICES`, each with its unit,
source and the date it was read), so the pull request and the alert never disagree. A plan document (`plan
--json`, the base branch's too) is priced by its resources' inputs, so two plans made by different versions
of the program compare:

- Cloud Run (`gcp:cloudrunv2/service:Service`), instance-based billing: every container's CPU and memory
  limits, per instance-second, for the warm instances (`scaling.minInstanceCount`) all month; up to
  `maxInstanceCount` under load (the ceiling is shown apart).
- Memorystore (`gcp:redis/instance:Instance`): its provisioned `memorySizeGb`, by the hour.
- Compute Engine (`gcp:compute/instance:Instance`): its E2 custom machine type's vCPUs and memory, by the
  hour, while it runs; a VM declared stopped (`desiredStatus: TERMINATED`, prod's standby) bills no vCPU or
  memory (https://cloud.google.com/compute/docs/instances/instance-lifecycle: "you are not billed for the VM
  instance" while TERMINATED; its disks still are, not priced here).
- Railway (`pulumi-python:dynamic/railway:Service`): billed for what it uses, at most its limits times its
  replicas: priced as that ceiling.
- Cloudflare for SaaS custom hostnames (`cloudflare:index/customHostname:CustomHostname`), a tenant's own
  domain: the zone's plan includes 100, each one more is billed per month.

Requests, egress, storage, Vercel and the Cloudflare plan itself are not priced: the figure is what the plan
declares, not the invoice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from components.observability import cost as prices

HOURS_PER_MONTH = 730
"""Google's and Railway's monthly figures use 730 hours (cloud.google.com/products/calculator)."""
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


@dataclass(frozen=True)
class Item:
    """One priced service (or a count of like resources)."""

    name: str
    monthly_usd: float
    basis: str
    """How the figure is made: `1 instance x (1 vCPU + 1 GiB)`, `334 hostnames - 100 included`."""
    prices: tuple[str, ...]
    ceiling_usd: float | None = None
    """Under load (Cloud Run's max instances); None when it does not scale."""


@dataclass(frozen=True)
class Priced:
    items: tuple[Item, ...]
    unpriced: tuple[str, ...] = ()
    """What could not be priced: a region or machine with no price (named, never a silent zero)."""

    @property
    def total(self) -> float:
        return sum(i.monthly_usd for i in self.items)


def _cpu(value: Any) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _gib(value: Any) -> float:
    text = str(value)
    units = {"Ki": 1 / 1024 ** 2, "Mi": 1 / 1024, "Gi": 1.0, "Ti": 1024.0, "M": 1e6 / 1024 ** 3, "G": 1e9 / 1024 ** 3}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text) / 1024 ** 3


def _region(location: str) -> str:
    """`southamerica-east1-a` (a zone) or `southamerica-east1` (a region) -> the region."""
    return re.sub(r"-[a-z]$", "", location)


def _cloud_run(name: str, inputs: Mapping[str, Any]) -> Item:
    template = cast(dict[str, Any], inputs.get("template") or {})
    vcpus = gib = 0.0
    for container in cast(list[dict[str, Any]], template.get("containers") or []):
        resources = cast(dict[str, Any], container.get("resources") or {})
        limits = cast(dict[str, Any], resources.get("limits") or {})
        vcpus += _cpu(limits.get("cpu", "1"))
        gib += _gib(limits.get("memory", "512Mi"))
    scaling = cast(dict[str, Any], template.get("scaling") or inputs.get("scaling") or {})
    warm = int(scaling.get("minInstanceCount") or 0)
    most = int(scaling.get("maxInstanceCount") or max(warm, 1))
    tier = prices.cloud_run_tier(str(inputs["location"]))
    keys = (f"cloudrun.vcpu_second.tier{tier}", f"cloudrun.gib_second.tier{tier}")
    per_instance = SECONDS_PER_MONTH * (vcpus * prices.price(keys[0]) + gib * prices.price(keys[1]))
    return Item(f"Cloud Run {name}", warm * per_instance,
                f"{warm} warm instance{'s' * (warm != 1)} x ({vcpus:g} vCPU + {gib:g} GiB), tier {tier}",
                keys, most * per_instance)


def _memorystore(name: str, inputs: Mapping[str, Any]) -> Item:
    gb = float(inputs["memorySizeGb"])
    region = str(inputs.get("region") or "")
    key = f"memorystore.basic_m1.gb_hour.{region}"
    hourly = prices.fixed_usd_per_hour(prices.FixedBilled("memorystore", region, gb=gb))
    return Item(f"Memorystore {name}", HOURS_PER_MONTH * hourly, f"{gb:g} GB provisioned", (key,))


def _vm(name: str, inputs: Mapping[str, Any]) -> Item:
    machine = str(inputs["machineType"])
    found = re.fullmatch(r"e2-custom-(\d+)-(\d+)", machine.rsplit("/", 1)[-1])
    if found is None:
        raise ValueError(f"machine type {machine}")
    vcpus, gb = float(found[1]), int(found[2]) / 1024
    region = _region(str(inputs.get("zone") or ""))
    keys = (f"gce.e2_custom.vcpu_hour.{region}", f"gce.e2_custom.gb_hour.{region}")
    stopped = str(inputs.get("desiredStatus") or "RUNNING").upper() == "TERMINATED"
    hourly = 0.0 if stopped else prices.fixed_usd_per_hour(prices.FixedBilled("gce", region, vcpus=vcpus, gb=gb))
    return Item(f"Compute Engine {name}", HOURS_PER_MONTH * hourly,
                f"{machine}{' (stopped: no vCPU or memory billed)' if stopped else ''}", () if stopped else keys)


def _railway(name: str, inputs: Mapping[str, Any]) -> Item:
    replicas = int(inputs.get("num_replicas") or 1)
    vcpus, gb = float(inputs.get("vcpus") or 0), float(inputs.get("memory_gb") or 0)
    keys = ("railway.vcpu_minute", "railway.gb_minute")
    monthly = replicas * HOURS_PER_MONTH * 60 * (vcpus * prices.price(keys[0]) + gb * prices.price(keys[1]))
    return Item(f"Railway {name}", monthly,
                f"at most {replicas} x ({vcpus:g} vCPU + {gb:g} GB), billed as used", keys)


def _hostnames(count: int) -> Item:
    key = "cloudflare.saas_custom_hostname_month"
    billed = max(0, count - prices.CLOUDFLARE_SAAS_INCLUDED_HOSTNAMES)
    return Item("Cloudflare for SaaS custom hostnames", billed * prices.price(key),
                f"{count} hostnames, {prices.CLOUDFLARE_SAAS_INCLUDED_HOSTNAMES} included", (key,))


PRICERS = {
    "gcp:cloudrunv2/service:Service": _cloud_run,
    "gcp:redis/instance:Instance": _memorystore,
    "gcp:compute/instance:Instance": _vm,
    "pulumi-python:dynamic/railway:Service": _railway,
}


def price(document: Mapping[str, Any]) -> Priced:
    """Every priced resource of a `plan --json` document, by its inputs."""
    items: list[Item] = []
    unpriced: list[str] = []
    hostnames = 0
    for resource in cast(list[dict[str, Any]], document.get("resources") or []):
        kind, name = str(resource.get("type")), str(resource.get("name"))
        inputs = cast(dict[str, Any], resource.get("inputs") or {})
        if kind == "cloudflare:index/customHostname:CustomHostname":
            hostnames += 1
        elif kind in PRICERS:
            try:
                items.append(PRICERS[kind](name, inputs))
            except (ValueError, KeyError, TypeError) as err:
                unpriced.append(f"{kind} {name}: {err}")
    if hostnames:
        items.append(_hostnames(hostnames))
    return Priced(tuple(sorted(items, key=lambda i: i.name)), tuple(unpriced))


@dataclass(frozen=True)
class CostDiff:
    before: Priced
    after: Priced

    @property
    def delta(self) -> float:
        return self.after.total - self.before.total

    def changed(self) -> list[tuple[str, Item | None, Item | None]]:
        old = {i.name: i for i in self.before.items}
        new = {i.name: i for i in self.after.items}
        return [(n, old.get(n), new.get(n)) for n in sorted(old.keys() | new.keys())
                if n not in old or n not in new
                or (old[n].monthly_usd, old[n].basis) != (new[n].monthly_usd, new[n].basis)]


def diff(before: Priced, after: Priced) -> CostDiff:
    return CostDiff(before, after)


def usd(value: float) -> str:
    return f"${value:,.2f}"


def signed(value: float) -> str:
    if abs(value) < 0.005:
        return "±$0.00"
    return f"{'+' if value > 0 else '-'}${abs(value):,.2f}"


def headline(d: CostDiff) -> str:
    return f"cost {signed(d.delta)}/month"


def render(d: CostDiff, *, full: bool = False) -> list[str]:
    """The cost section: the change, per service that changes, then every price used with its source and date."""
    lines = [f"**Monthly cost** (list prices, what the plan declares): {usd(d.before.total)} → "
             f"{usd(d.after.total)} (**{signed(d.delta)}/month**)"]
    for name, old, new in d.changed():
        if old is None and new is not None:
            lines.append(f"- {name}: new, {usd(new.monthly_usd)}/month ({new.basis})")
        elif new is None and old is not None:
            lines.append(f"- {name}: removed, {signed(-old.monthly_usd)}/month")
        elif old is not None and new is not None:
            lines.append(f"- {name}: {usd(old.monthly_usd)} → {usd(new.monthly_usd)} "
                         f"({signed(new.monthly_usd - old.monthly_usd)}; {old.basis} → {new.basis})")
    lines += [f"- ⚠️ not priced: {u}" for u in d.after.unpriced]
    used = sorted({k for i in d.after.items for k in i.prices})
    lines += ["", "<details><summary>Per service, and the prices used</summary>", ""]
    for item in d.after.items:
        ceiling = f", up to {usd(item.ceiling_usd)} at max instances" if item.ceiling_usd else ""
        lines.append(f"- {item.name}: {usd(item.monthly_usd)}/month ({item.basis}{ceiling})")
    lines.append("")
    for key in used:
        p = prices.PRICES[key]
        note = f"; {p.note}" if p.note and full else ""
        lines.append(f"- `{key}`: {p.usd:g} {p.unit}: {p.source}, read {p.checked}{note}")
    lines += ["", "</details>"]
    return lines
