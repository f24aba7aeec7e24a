"""PLAT-TYPE-001: deny by default over resource types (issue #22 item 15).

Every resource type the program may declare, in any stack, is in `REVIEWED` with the rules that judge
it; a type judged by no rule in particular is listed with the reason it needs none. Any other type is a
mandatory violation: a type the pack has never seen has no rule that could refuse what it does (a page
rule that turns the WAF off, an IP access rule that admits an address past it, a zone settings override),
so it is refused until a rule reviews it. `REFUSED` names types that are never allowed, with why.
POLICIES.md lists both tables (`policies/doc.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict

NOTHING: tuple[str, ...] = ()

# type -> (the rules that review it, what it is / why nothing in particular does)
REVIEWED: dict[str, tuple[tuple[str, ...], str]] = {
    # Cloudflare
    "cloudflare:index/apiToken:ApiToken": (("PLAT-IAM-001",), "the zone-scoped catalog-purge token"),
    "cloudflare:index/customHostname:CustomHostname": (("PLAT-TLS-001", "PLAT-WAF-001", "PLAT-WAF-003"),
                                                       "a tenant's own domain (Cloudflare for SaaS)"),
    "cloudflare:index/customHostnameFallbackOrigin:CustomHostnameFallbackOrigin": (
        NOTHING, "names the zone's own record that custom hostnames reach; that record is PLAT-DNS-001's"),
    "cloudflare:index/dnsRecord:DnsRecord": (("PLAT-DNS-001", "PLAT-DNS-002"), "DNS records"),
    "cloudflare:index/record:Record": (("PLAT-DNS-001", "PLAT-DNS-002"), "DNS records (deprecated type)"),
    "cloudflare:index/ruleset:Ruleset": (("PLAT-WAF-001", "PLAT-WAF-002", "PLAT-WAF-003", "PLAT-TLS-001",
                                          "PLAT-TLS-002", "PLAT-EDGE-001", "PLAT-EDGE-002", "PLAT-EDGE-004"),
                                         "WAF, rate limits, redirects, cache, header and configuration rules"),
    "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication": (
        ("PLAT-EDGE-005", "PLAT-EDGE-003"), "Cloudflare Access in front of an operator's UI (integration's Grafana)"),
    "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy": (
        ("PLAT-EDGE-005",), "who Access admits: named e-mails, or the deploy's service token; no IAM grant"),
    "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken": (
        ("PLAT-EDGE-005",), "the deploy's Access credential; opens Access only, no Cloudflare API token"),
    "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared": (
        ("PLAT-EDGE-003",), "the tunnel itself, configured remotely (configSrc cloudflare) so its routes are judged"),
    "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig": (
        ("PLAT-EDGE-003",), "the tunnel's routes"),
    "cloudflare:index/zoneSetting:ZoneSetting": (("PLAT-TLS-001", "PLAT-TLS-003"), "zone settings"),
    # Docker (integration)
    "docker:index/container:Container": (("PLAT-CTR-001", "PLAT-DATA-009", "PLAT-ENV-001", "PLAT-DATA-003",
                                          "PLAT-DATA-001", "PLAT-IMG-001", "PLAT-IMG-002"), "containers"),
    "docker:index/image:Image": (("PLAT-IMG-001",), "images built here"),
    "docker:index/network:Network": (NOTHING, "the host's private bridge; what a container publishes is "
                                              "PLAT-DATA-003's and PLAT-ENV-001's"),
    "docker:index/volume:Volume": (("PLAT-CTR-001",), "a named volume on the host: a plain local one, no bind"),
    # Google Cloud
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": (("PLAT-IAM-002", "PLAT-IAM-004"), "a grant"),
    "gcp:certificatemanager/certificate:Certificate": (NOTHING, "the load balancer's managed certificate"),
    "gcp:certificatemanager/certificateMap:CertificateMap": (NOTHING, "the certificate's map"),
    "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry": (NOTHING, "the certificate's host"),
    "gcp:certificatemanager/dnsAuthorization:DnsAuthorization": (NOTHING, "proves the domain for the certificate"),
    "gcp:cloudrunv2/service:Service": (("PLAT-IAM-003", "PLAT-IAM-004", "PLAT-DATA-005", "PLAT-SCALE-001",
                                        "PLAT-SCALE-002", "PLAT-IMG-001", "PLAT-ENV-001", "PLAT-LOG-001",
                                        "PLAT-DATA-009"),
                                       "Cloud Run services"),
    "gcp:cloudrunv2/job:Job": (("PLAT-IAM-003", "PLAT-DATA-005", "PLAT-IMG-001"),
                               "the schema migration job (engine-migrate): its own account, its own secrets"),
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": (("PLAT-IAM-002", "PLAT-IAM-004"), "a grant"),
    "gcp:compute/address:Address": (NOTHING, "a VM's reserved internal address; an external one attaches only "
                                             "through accessConfigs, which PLAT-VM-003/004 refuse"),
    "gcp:compute/backendService:BackendService": (("PLAT-DATA-007", "PLAT-NET-002"), "the load balancer's backend"),
    "gcp:compute/disk:Disk": (NOTHING, "the VM's data disk (PocketBase's backups are PLAT-VM-002's)"),
    "gcp:compute/firewall:Firewall": (("PLAT-VM-003", "PLAT-NET-001"), "firewall rules"),
    "gcp:compute/globalAddress:GlobalAddress": (NOTHING, "the load balancer's address, or the internal range private "
                                                         "services access peers (purpose VPC_PEERING)"),
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": (
        ("PLAT-TLS-005",), "forwards 443 to a declared HTTPS proxy, 80 to a redirect-only HTTP proxy"),
    "gcp:compute/instance:Instance": (("PLAT-VM-001", "PLAT-VM-002", "PLAT-VM-003", "PLAT-VM-004", "PLAT-IAM-003"),
                                      "VMs"),
    "gcp:compute/network:Network": (("PLAT-LOG-004",), "the custom-mode VPC; its subnets and firewalls are judged"),
    "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup": (("PLAT-DATA-007",), "serverless NEGs"),
    "gcp:compute/router:Router": (NOTHING, "carries the VM's NAT, which PLAT-LOG-004 judges"),
    "gcp:compute/routerNat:RouterNat": (("PLAT-LOG-004",), "the VM's egress"),
    "gcp:compute/securityPolicy:SecurityPolicy": (("PLAT-NET-002",), "Cloud Armor"),
    "gcp:compute/sSLPolicy:SSLPolicy": (("PLAT-TLS-004",), "the load balancer's TLS versions and ciphers"),
    "gcp:compute/regionSslPolicy:RegionSslPolicy": (("PLAT-TLS-004",), "a regional SSL policy"),
    "gcp:compute/subnetwork:Subnetwork": (("PLAT-LOG-004",), "subnets (flow logs)"),
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": (("PLAT-TLS-004",), "the HTTPS frontend"),
    "gcp:compute/targetHttpProxy:TargetHttpProxy": (("PLAT-TLS-005",), "a plain-HTTP frontend, as a redirect only"),
    "gcp:compute/uRLMap:URLMap": (("PLAT-TLS-005", "PLAT-NET-003"), "the load balancer's routing"),
    "gcp:logging/projectBucketConfig:ProjectBucketConfig": (("PLAT-LOG-001", "PLAT-LOG-003"), "log retention"),
    "gcp:logging/projectExclusion:ProjectExclusion": (("PLAT-LOG-005",), "log exclusions"),
    "gcp:logging/projectSink:ProjectSink": (("PLAT-LOG-002", "PLAT-LOG-005"), "log sinks"),
    "gcp:projects/iAMMember:IAMMember": (("PLAT-IAM-002", "PLAT-IAM-004"), "project-level grants"),
    "gcp:projects/iAMAuditConfig:IAMAuditConfig": (("PLAT-LOG-003",), "Data Access audit logs"),
    "gcp:projects/service:Service": (NOTHING, "turns a Google API on; grants nothing"),
    "gcp:redis/instance:Instance": (("PLAT-DATA-003", "PLAT-SIZE-002"), "Memorystore"),
    "gcp:servicenetworking/connection:Connection": (NOTHING, "peers the VPC with Google's service producer network "
                                                             "for Cloud SQL's private address; admits nothing else"),
    "gcp:sql/database:Database": (NOTHING, "a database in an instance PLAT-DATA-010/011 judge"),
    "gcp:sql/databaseInstance:DatabaseInstance": (("PLAT-DATA-010", "PLAT-DATA-011", "PLAT-DATA-012"),
                                                  "Cloud SQL for PostgreSQL and its replica"),
    "gcp:sql/user:User": (("PLAT-DATA-013",), "a database user"),
    "gcp:secretmanager/secret:Secret": (("PLAT-IAM-002", "PLAT-IAM-004"), "secrets (their readers)"),
    "gcp:secretmanager/secretIamMember:SecretIamMember": (("PLAT-IAM-002", "PLAT-IAM-004"), "a grant"),
    "gcp:secretmanager/secretVersion:SecretVersion": (("PLAT-SECRET-001",), "a secret's value, a Pulumi secret end "
                                                                             "to end"),
    "gcp:serviceaccount/account:Account": (("PLAT-IAM-003",), "workload identities"),
    "gcp:storage/bucket:Bucket": (("PLAT-DATA-006", "PLAT-DATA-008", "PLAT-LOG-003"), "buckets"),
    "gcp:storage/bucketIAMMember:BucketIAMMember": (("PLAT-IAM-002", "PLAT-IAM-004"), "a grant"),
    "gcp:storage/bucketACL:BucketACL": (("PLAT-IAM-002", "PLAT-IAM-004"), "legacy ACLs, always refused"),
    "gcp:storage/objectACL:ObjectACL": (("PLAT-IAM-002", "PLAT-IAM-004"), "legacy ACLs, always refused"),
    "gcp:storage/defaultObjectACL:DefaultObjectACL": (("PLAT-IAM-002", "PLAT-IAM-004"), "legacy ACLs, always refused"),
    "gcp:storage/hmacKey:HmacKey": (NOTHING, "the DR writer account's key for the S3 API; what the account may do "
                                             "is PLAT-IAM-002's"),
    # Grafana
    "grafana:alerting/contactPoint:ContactPoint": (("PLAT-OBS-001",), "where alerts go"),
    "grafana:alerting/notificationPolicy:NotificationPolicy": (("PLAT-OBS-001",), "routes alerts to the contact "
                                                                                  "points; pages never muted"),
    "grafana:alerting/ruleGroup:RuleGroup": (("PLAT-OBS-001",), "alert rules"),
    "grafana:oss/dashboard:Dashboard": (NOTHING, "a dashboard; reads what Grafana may read"),
    "grafana:oss/folder:Folder": (NOTHING, "holds the dashboards and rules"),
    # Railway (dynamic providers of this program)
    "pulumi-python:dynamic/observability:LogSink": (("PLAT-LOG-002",), "Railway's log sink"),
    "pulumi-python:dynamic/railway:Service": (("PLAT-DATA-001", "PLAT-DATA-002", "PLAT-DATA-003", "PLAT-DATA-004",
                                               "PLAT-IMG-001", "PLAT-IMG-002", "PLAT-LOG-002", "PLAT-ENV-001",
                                               "PLAT-DATA-009"),
                                              "Railway services"),
    # TLS (PocketBase's own certificate, components/database.py)
    "tls:index/privateKey:PrivateKey": (("PLAT-TLS-006",), "PocketBase's TLS key (a secret in the state)"),
    "tls:index/selfSignedCert:SelfSignedCert": (("PLAT-TLS-006",), "PocketBase's certificate for the VMs' private "
                                                                   "addresses, pinned by the engine"),
    # Others
    "random:index/randomPassword:RandomPassword": (("PLAT-SECRET-001",), "generates a credential in the state"),
    "time:index/sleep:Sleep": (NOTHING, "waits; creates nothing"),
    "vercel:index/firewallConfig:FirewallConfig": (("PLAT-FE-003",), "the storefront's firewall: production only "
                                                                     "through the edge"),
    "vercel:index/project:Project": (("PLAT-FE-001", "PLAT-FE-002"), "the storefront"),
    "vercel:index/projectDomain:ProjectDomain": (("PLAT-FE-001",), "a tenant host on the storefront's production "
                                                                   "deployment; its DNS record is PLAT-DNS-001's"),
    "vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable": (("PLAT-IAM-005", "PLAT-FE-002"),
                                                                           "the storefront's variables"),
    "pulumi:pulumi:Stack": (NOTHING, "the stack itself"),
}
# Providers' own resources: what they are configured with is the stack file's, validated per namespace.
for _package in ("cloudflare", "docker", "gcp", "grafana", "random", "time", "tls", "vercel", "pulumi-python"):
    REVIEWED[f"pulumi:providers:{_package}"] = (("PLAT-PROV-001",), "an explicit provider: its endpoint, TLS and "
                                                                     "credential inputs")
# This program's own components declare nothing by themselves; their children are judged.
COMPONENT_PACKAGE = "platform:"

REFUSED: dict[str, str] = {
    "cloudflare:index/pageRule:PageRule": "page rules turn security, SSL or the cache on and off per URL "
                                          "(disable_security, ssl off, cache everything); expected rulesets",
    "cloudflare:index/zoneSettingsOverride:ZoneSettingsOverride": "overrides every zone setting at once, outside "
                                                                  "PLAT-TLS-001's review; expected zoneSetting",
    "cloudflare:index/accessRule:AccessRule": "an IP access rule whitelists addresses past the WAF and rate limits",
    "cloudflare:index/zoneLockdown:ZoneLockdown": "legacy lockdowns replace the WAF's review of who may reach a path",
    "cloudflare:index/accountToken:AccountToken": "an account-owned token reaches every zone (PLAT-IAM-001)",
    "vercel:index/firewallBypass:FirewallBypass": "lets an address around Vercel's system mitigations on a domain; "
                                                  "the storefront takes traffic from the edge alone (PLAT-FE-003)",
    "gcp:compute/projectMetadata:ProjectMetadata": "project metadata reaches every VM (SSH keys, serial port)",
    "gcp:compute/projectMetadataItem:ProjectMetadataItem": "project metadata reaches every VM (SSH keys, serial port)",
}


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-TYPE-001."""
    token = resource.type
    if token.startswith(COMPONENT_PACKAGE):
        return NotApplicable("a component of this program; its children are judged")
    if token in REFUSED:
        return [f"{token} is refused: {REFUSED[token]}"]
    if token not in REVIEWED:
        return [f"{token} is a resource type no rule of this pack reviews, so nothing could refuse what it does; "
                "expected only the types POLICIES.md lists (a new type needs its rule first)"]
    return []
