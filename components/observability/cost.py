"""The cost alert (M6): what each backend bills for what it runs now, projected over a month.

Each backend is priced by what it bills, measured where it bills it (not by cAdvisor on a host that is
paid for whatever runs on it):

- Cloud Run (instance-based billing: the engine keeps its CPU between requests) bills the vCPU and GiB of
  every container of an instance for as long as the instance lives. Cloud Monitoring counts that time,
  `run.googleapis.com/container/billable_instance_time` ("billable time aggregated across all container
  instances of the revision", a DELTA sampled every 60 s), which stackdriver_exporter exports as the
  seconds billed in the latest minute: divided by 60, the number of instances billed.
- Memorystore bills its provisioned capacity by the hour, used or not; a Compute Engine VM (the gce
  backend) its machine type's vCPUs and memory by the second while it runs, which is always.
- Railway bills the CPU and memory a service uses, per minute (its metrics API, CPU_USAGE in vCPU and
  MEMORY_USAGE_GB, through json_exporter: `railway-metrics`).
- docker: one host the integration stack is given, paid outside the platform; nothing runs per use.

The table holds each price, its unit and its source. Prices are list prices in USD without discounts or
free tiers (the free tier is at most an error in the alert's favour).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str
    note: str = ""
    checked: str = "2026-11-29"
    """The date the price was read on its source (the pull-request comment shows it next to the figure)."""


CLOUD_RUN_PRICING = "https://cloud.google.com/run/pricing"
MEMORYSTORE_PRICING = "https://cloud.google.com/memorystore/docs/redis/pricing"
GCE_PRICING = "https://cloud.google.com/compute/vm-instance-pricing#e2_custom_machine_types"
UNVERIFIED = "estimated as 1.5 times us-central1's figure: confirm it on the page before relying on the alert"
RAILWAY_PRICING = "https://docs.railway.com/reference/pricing/plans"
CLOUDFLARE_SAAS_PRICING = "https://developers.cloudflare.com/cloudflare-for-platforms/cloudflare-for-saas/plans/"
CLOUDFLARE_SAAS_INCLUDED_HOSTNAMES = 100
"""Free, Pro and Business zones include 100 custom hostnames; each further one is billed per month."""

# Cloud Run prices by region tier ("Cloud Run pricing depends on the selected region"; instance-based
# billing: "Services with CPU always allocated").
CLOUD_RUN_REGION_TIER: dict[str, int] = {
    "us-central1": 1, "us-east1": 1, "us-east4": 1, "us-west1": 1, "europe-west1": 1, "europe-west4": 1,
    "southamerica-east1": 2, "us-west2": 2, "europe-west2": 2, "asia-southeast1": 2,
}
PRICES: dict[str, Price] = {
    "cloudrun.vcpu_second.tier1": Price(0.000018, "USD per vCPU-second, instance-based billing", CLOUD_RUN_PRICING),
    "cloudrun.gib_second.tier1": Price(0.000002, "USD per GiB-second, instance-based billing", CLOUD_RUN_PRICING),
    "cloudrun.vcpu_second.tier2": Price(0.0000252, "USD per vCPU-second, instance-based billing", CLOUD_RUN_PRICING,
                                        "Tier 2 is 1.4 times Tier 1 on the page"),
    "cloudrun.gib_second.tier2": Price(0.0000028, "USD per GiB-second, instance-based billing", CLOUD_RUN_PRICING,
                                       "Tier 2 is 1.4 times Tier 1 on the page"),
    "memorystore.basic_m1.gb_hour.us-central1": Price(0.049, "USD per GB-hour, Basic tier, M1 (1-4 GB)",
                                                      MEMORYSTORE_PRICING),
    "memorystore.basic_m1.gb_hour.southamerica-east1": Price(0.0735, "USD per GB-hour, Basic tier, M1 (1-4 GB)",
                                                             MEMORYSTORE_PRICING, UNVERIFIED),
    "gce.e2_custom.vcpu_hour.us-central1": Price(0.022890, "USD per vCPU-hour, E2 custom", GCE_PRICING),
    "gce.e2_custom.gb_hour.us-central1": Price(0.003067, "USD per GB-hour, E2 custom", GCE_PRICING),
    "gce.e2_custom.vcpu_hour.southamerica-east1": Price(0.034335, "USD per vCPU-hour, E2 custom", GCE_PRICING,
                                                        UNVERIFIED),
    "gce.e2_custom.gb_hour.southamerica-east1": Price(0.0046005, "USD per GB-hour, E2 custom", GCE_PRICING,
                                                      UNVERIFIED),
    "railway.vcpu_minute": Price(0.000463, "USD per vCPU-minute used", RAILWAY_PRICING, "USD 20 per vCPU-month"),
    "railway.gb_minute": Price(0.000231, "USD per GB-minute used", RAILWAY_PRICING, "USD 10 per GB-month"),
    "cloudflare.saas_custom_hostname_month": Price(
        0.10, "USD per custom hostname per month beyond the 100 included", CLOUDFLARE_SAAS_PRICING,
        "Free, Pro and Business plans; also domainee.dev/blog/how-to-set-up-custom-domains-cloudflare-ssl-for-saas",
        checked="2026-12-07"),
    "docker.host": Price(0.0, "USD per hour attributable to one container", "the integration host",
                         "a fixed host paid outside the platform: nothing is billed per use"),
}

BILLABLE_INSTANCE_TIME = "stackdriver_cloud_run_revision_run_googleapis_com_container_billable_instance_time"
MEMORYSTORE_CAPACITY_TIERS_GB = (1, 4)
"""M1 is 1 to 4 GB; a larger instance is priced from another row of the page."""


@dataclass(frozen=True)
class CloudRunBilled:
    service: str
    """The Cloud Run service name (`service_name` in Cloud Monitoring)."""
    vcpus: float
    """All containers of one instance: the ingress container and its sidecars."""
    gib: float
    region: str


@dataclass(frozen=True)
class FixedBilled:
    """Billed by its size whether used or not: a VM, a Memorystore instance."""

    product: str
    """`gce` or `memorystore`."""
    region: str
    vcpus: float = 0
    gb: float = 0


@dataclass(frozen=True)
class Billing:
    cloud_run: tuple[CloudRunBilled, ...] = ()
    fixed: tuple[FixedBilled, ...] = ()
    railway: bool = False


def cloud_run_tier(region: str) -> int:
    if region not in CLOUD_RUN_REGION_TIER:
        raise ValueError(f"no Cloud Run price tier for {region}: add it to CLOUD_RUN_REGION_TIER ({CLOUD_RUN_PRICING})")
    return CLOUD_RUN_REGION_TIER[region]


def price(key: str) -> float:
    if key not in PRICES:
        raise ValueError(f"no price {key} in components/observability/cost.py: add it with its source")
    return PRICES[key].usd


def fixed_usd_per_hour(item: FixedBilled) -> float:
    if item.product == "memorystore":
        low, high = MEMORYSTORE_CAPACITY_TIERS_GB
        if not low <= item.gb <= high:
            raise ValueError(f"Memorystore of {item.gb:g} GB is not priced here ({MEMORYSTORE_PRICING})")
        return item.gb * price(f"memorystore.basic_m1.gb_hour.{item.region}")
    return (item.vcpus * price(f"gce.e2_custom.vcpu_hour.{item.region}")
            + item.gb * price(f"gce.e2_custom.gb_hour.{item.region}"))


def _g(value: float) -> str:
    return f"{value:.10g}"


def cost_usd_per_hour(billing: Billing) -> str | None:
    """PromQL of what the stack bills per hour now; None when nothing is billed per use (docker only: the
    host's price is fixed, outside the platform, and there is nothing for the alert to measure). A source
    with no data leaves the sum without data: the alert then reads as no data (never as zero cost) and the
    source's absence alert fires."""
    terms: list[str] = []
    for service in billing.cloud_run:
        tier = cloud_run_tier(service.region)
        per_instance_hour = 3600 * (service.vcpus * price(f"cloudrun.vcpu_second.tier{tier}")
                                    + service.gib * price(f"cloudrun.gib_second.tier{tier}"))
        selector = f'{BILLABLE_INSTANCE_TIME}{{service_name="{service.service}"}}'
        terms.append(f"sum({selector}) / 60 * {_g(per_instance_hour)}")
    fixed = sum(fixed_usd_per_hour(item) for item in billing.fixed)
    if fixed:
        terms.append(f"vector({_g(fixed)})")
    if billing.railway:
        terms.append(f"sum(railway_cpu_usage_vcpus) * {_g(60 * price('railway.vcpu_minute'))}")
        terms.append(f"sum(railway_memory_usage_gigabytes) * {_g(60 * price('railway.gb_minute'))}")
    if not terms:
        return None
    return " + ".join(f"({t})" for t in terms)
