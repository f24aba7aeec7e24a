"""PLAT-TLS-006: the program's own TLS keys and self-signed certificates are what PocketBase's private TLS needs and
nothing more (issue #22 item 7; components/database.py).

`tls:index/privateKey:PrivateKey`: ECDSA on P-256 or P-384, or RSA of at least 3072 bits (NIST SP 800-57 Part 1
Rev. 5 table 2: 2048-bit RSA gives 112 bits of security, acceptable only to 2030; P-256 gives 128). The provider's
RSA default is 2048 bits (`rsa_bits`, pulumi_tls/private_key.py), so RSA must say its size. ED25519 is refused: TLS
clients of the engine's libraries do not all take it for server certificates.

`tls:index/selfSignedCert:SelfSignedCert`: a server certificate the engine pins, so it is
- not a CA (`isCaCertificate` false, explicitly): a CA key could sign a certificate for any name;
- `allowedUses` within server_auth, digital_signature and key_encipherment, server_auth included (RFC 5280
  4.2.1.3/4.2.1.12: cert_signing, client_auth, code_signing, any_extended... each lets the key do more);
- valid at most 825 days: the CA/Browser Forum Baseline Requirements' limit for server certificates
  (section 6.3.2 "Certificate operational periods", 825 days for certificates issued after 2018-03-01; 398 since
  2020-09-01 for publicly trusted ones, which this is not);
- for private addresses only: every `ipAddresses` entry inside RFC 1918 (10/8, 172.16/12, 192.168/16) or IPv6 ULA
  fc00::/7 (RFC 4193); no `dnsNames` but names under `.internal` (reserved for private use, ICANN 2024; GCP's
  internal DNS), no `uris`: a name in a public zone could be served to anyone who trusts this key.
Input names from pulumi_tls 5.6.2 (self_signed_cert.py, private_key.py): algorithm, ecdsa_curve, rsa_bits,
is_ca_certificate, allowed_uses, validity_period_hours, ip_addresses, dns_names, uris.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict, as_list, is_unknown

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert"
CURVES = frozenset({"P256", "P384"})
MIN_RSA_BITS = 3072
SERVER_USES = frozenset({"server_auth", "digital_signature", "key_encipherment"})
MAX_VALIDITY_HOURS = 825 * 24
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                           "fc00::/7"))


def _private(address: Any) -> bool:
    if not isinstance(address, str):
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in PRIVATE_NETWORKS)


def _key(resource: Resource) -> list[str]:
    algorithm, curve, bits = resource.get("algorithm"), resource.get("ecdsaCurve"), resource.get("rsaBits")
    if algorithm == "ECDSA":
        # The provider's default curve is P224 (private_key.py `ecdsa_curve`), which is refused.
        return [] if curve in CURVES else [f"TLS key {resource.name!r} is ECDSA on {curve or 'P224 (the default)'!r}; "
                                           f"expected {' or '.join(sorted(CURVES))}"]
    if algorithm == "RSA":
        ok = isinstance(bits, int) and not isinstance(bits, bool) and bits >= MIN_RSA_BITS
        return [] if ok else [f"TLS key {resource.name!r} is RSA of {bits if bits is not None else '2048 (default)'} "
                              f"bits; expected at least {MIN_RSA_BITS}"]
    return [f"TLS key {resource.name!r} has algorithm {algorithm!r}; expected ECDSA (P256/P384) or RSA >= "
            f"{MIN_RSA_BITS} bits"]


def _cert(resource: Resource) -> list[str]:
    name, out = resource.name, list[str]()
    if resource.get("isCaCertificate") is not False:
        out.append(f"certificate {name!r} has isCaCertificate {resource.get('isCaCertificate')!r}: a CA key signs "
                   "certificates for any name; expected false, set explicitly")
    uses = resource.get("allowedUses")
    listed = {u for u in as_list(uses) if isinstance(u, str)}
    if is_unknown(uses) or len(listed) != len(as_list(uses)) or "server_auth" not in listed or listed - SERVER_USES:
        out.append(f"certificate {name!r} allows {uses!r}; expected server_auth with at most digital_signature and "
                   "key_encipherment")
    hours = resource.get("validityPeriodHours")
    if not isinstance(hours, int) or isinstance(hours, bool) or not 0 < hours <= MAX_VALIDITY_HOURS:
        out.append(f"certificate {name!r} is valid {hours!r} hours; expected at most {MAX_VALIDITY_HOURS} (825 days, "
                   "CA/B Forum Baseline Requirements 6.3.2)")
    addresses = resource.get("ipAddresses")
    if is_unknown(addresses) or (addresses is not None and not isinstance(addresses, list)):
        out.append(f"certificate {name!r} names addresses not known until apply; expected private addresses known")
    public = [a for a in as_list(addresses) if not _private(a)]
    if public:
        out.append(f"certificate {name!r} names {public!r}; expected only private addresses (RFC 1918, fc00::/7)")
    dns = resource.get("dnsNames")
    if is_unknown(dns) or [d for d in as_list(dns) if not (isinstance(d, str) and d.rstrip(".").endswith(".internal"))]:
        out.append(f"certificate {name!r} names DNS names {dns!r}; expected none outside .internal (a name of a public "
                   "zone is served to whoever trusts this key)")
    if resource.get("uris"):
        out.append(f"certificate {name!r} names URIs {resource.get('uris')!r}; expected none")
    if not as_list(addresses) and not as_list(dns):
        out.append(f"certificate {name!r} names no address; expected the private addresses the engine dials")
    return out


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-TLS-006."""
    if resource.type == PRIVATE_KEY:
        return _key(resource)
    if resource.type == SELF_SIGNED:
        return _cert(resource)
    return NotApplicable("not a TLS key or self-signed certificate")
