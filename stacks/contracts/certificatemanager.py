"""Certificate Manager: a managed certificate issued through DNS authorizations needs one for each of its
domains (`gcp:certificatemanager/certificate:Certificate`, `.../dnsAuthorization:DnsAuthorization`)."""

from __future__ import annotations

from collections.abc import Sequence

from stacks.contracts.rule import Context, Planned, Problem, Rule, get, items

CERTIFICATE = "gcp:certificatemanager/certificate:Certificate"
DNS_AUTHORIZATION = "gcp:certificatemanager/dnsAuthorization:DnsAuthorization"


def _covered(domain: str, authorized: set[str]) -> bool:
    """A DNS authorization for example.com covers example.com and *.example.com."""
    return domain in authorized or (domain.startswith("*.") and domain[2:] in authorized)


def _domains_authorized(plan: Sequence[Planned], _: Context) -> Sequence[tuple[Planned, Problem]]:
    # The mock engine gives a resource the id `<name>-id`: a certificate names its authorizations by id.
    by_id = {f"{r.name}-id": get(r.inputs, "domain") for r in plan if r.type == DNS_AUTHORIZATION}
    found: list[tuple[Planned, Problem]] = []
    for cert in (r for r in plan if r.type == CERTIFICATE):
        refs = items(get(cert.inputs, "managed", "dnsAuthorizations"))
        if not refs:
            continue
        authorized = {str(by_id[ref]) for ref in refs if isinstance(ref, str) and by_id.get(ref)}
        if len(authorized) < len(refs):
            continue  # an authorization this plan does not declare: nothing to compare
        missing = [d for d in items(get(cert.inputs, "managed", "domains")) if not _covered(str(d), authorized)]
        if missing:
            found.append((cert, f"domains {', '.join(map(str, missing))} not among authorized "
                                f"{', '.join(sorted(authorized))}"))
    return found


RULES: tuple[Rule, ...] = (
    Rule("CM-DNSAUTH-001", "Certificate Manager", "each domain of a DNS-authorized managed certificate has a DNS "
         "authorization for that domain", "https://cloud.google.com/certificate-manager/docs/reference/certificate-manager/rest/v1/"
         "projects.locations.dnsAuthorizations (domain: \"A DnsAuthorization resource covers a single domain and "
         "its wildcard, e.g. authorization for 'example.com' can be used to issue certificates for "
         "'example.com' and '*.example.com'\"); https://cloud.google.com/certificate-manager/docs/"
         "dns-authorizations (\"each DNS authorization covers only a single domain name\")",
         check_plan=_domains_authorized),
)
