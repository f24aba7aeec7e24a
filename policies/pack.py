"""The pack table: every rule with its id, what it checks, why, the requirement it enforces, its
severity and enforcement level, and what it denies by default. `policies/__main__.py` serves it;
`POLICIES.md` is generated from it.

Every rule is deny-by-default: it lists what is allowed and refuses the rest, including values the
engine does not know yet. A rule that cannot read its inputs reports a clean mandatory violation
naming the error, never a traceback (issue #11, item 11).

Waivers reach the pack as policy config: each rule's own under `waivers` (`[{resource, subject,
expires, ticket, reason}]`), and all of them, each with its `rule`, under PLAT-WAIVER-001, which
checks them against the whole stack (`policies/waivers.py`). A waiver that is malformed, expired,
too long, without a real reason or ticket, or for an IAM rule in production waives nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pulumi_policy.policy as _policy_module
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies import waivers as waiver_rules
from policies.rule import UNKNOWN, Finding, NotApplicable, Resource, Rule, Violation, as_list, as_map, as_violation
from policies.rules import (
    cloudflare_access,
    cloudflare_meaning,
    compute_vm,
    data_cloudsql,
    data_disaster_recovery,
    data_failover_standby,
    data_no_plaintext_secret_env,
    data_pocketbase_backups,
    data_pocketbase_private,
    data_pocketbase_single_volume,
    data_redis_private,
    data_vm_backups,
    dns_web_records_proxied,
    env_stack_identity,
    gcp_network,
    gcp_storage_logging,
    iam_cloudflare_token_scope,
    iam_gcp,
    iam_vercel_sensitive_env,
    image_immutable,
    logs_retention,
    providers,
    reviewed_types,
    saas_meaning,
    scale_engine_replicas,
    secrets_generated,
    size_within_document,
    tls_hsts,
    tls_https_redirect,
    tls_private_cert,
    tls_zone_settings,
    vercel_firewall,
    waf_covers_proxied_hosts,
    waf_owasp_blocks_in_prod,
    waf_rate_limits,
)

PACK_NAME = "platform-policies"
WAIVER_RULE = "PLAT-WAIVER-001"


def _check_waivers(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    return check_waivers(resources, config)  # defined below, once RULES exists


RULES: tuple[Rule, ...] = (
    Rule("PLAT-ENV-001", "The stack is what it says",
         "A prod file claiming staging gets staging's weaker profile; docker in prod has no failover or backups.",
         "D2, S3", "critical", "mandatory",
         "a platform:environment other than the stack's name (as the engine passes it), resources of another "
         "stack or saying another environment, and any docker container outside integration",
         stack_check=env_stack_identity.check),
    Rule("PLAT-IAM-001", "Cloudflare API tokens: user-owned, one policy, one zone of this stack, allowed "
         "permissions, an RFC 3339 expiry",
         "A leaked token must not reach other zones or the account, nor live forever.", "S3", "critical",
         "mandatory",
         "every Cloudflare token type but apiToken (accountToken included; an Access service token is no API "
         "token: PLAT-EDGE-005), several policies, a zone the stack "
         "does not configure, a permission group off the list, no or an unreadable expiry, unknown values",
         stack_check=iam_cloudflare_token_scope.check,
         config_defaults={"allowed_permission_groups": ["e17beae8b8cb423a99b1730f21238bed",
                                                        "c8fed203ed3043cba015a93ad1616f1f"],
                          "max_lifetime_days": 400}),
    Rule("PLAT-IAM-002", "GCP IAM grants are on the allow-list: type, role and a member the stack declares",
         "Every grant beyond the service's own secrets and its invoker is a path to more privilege.", "S3",
         "critical", "mandatory",
         "every resource whose type speaks of IAM, Policy, Binding, Member or ACL but secret accessor on a "
         "declared secret and run.invoker; custom roles, keys, project/folder/organization grants (owner, editor, "
         "token creator, secret accessor); members not declared; any unknown value in a grant",
         stack_check=iam_gcp.check_grants),
    Rule("PLAT-IAM-003", "Workloads are Cloud Run v2 services, each as its own declared service account",
         "The default compute account holds Editor on the project; a shared account holds every grant of each user.",
         "S3", "high", "mandatory",
         "Cloud Run v1, jobs, Cloud Functions, App Engine, GKE and other workload types; a service account the "
         "stack does not declare, shared by two workloads, or a default (compute, App Engine, Cloud Build) account",
         stack_check=iam_gcp.check_workloads),
    Rule("PLAT-IAM-004", "Nothing is public but run.invoker on a public service behind the load balancer",
         "The load balancer does not authenticate; internal ingress keeps everyone else out of the service.",
         "S3", "high", "mandatory",
         "allUsers or allAuthenticatedUsers anywhere (secrets, buckets, registries, policy documents) except "
         "run.invoker on the same-project, same-region, same-name service labelled public with ingress "
         "INTERNAL_LOAD_BALANCER; invokerIamDisabled",
         stack_check=iam_gcp.check_public),
    Rule("PLAT-IAM-005", "Vercel variables that hold credentials are sensitive, and none is public",
         "Sensitive variables cannot be read back; NEXT_PUBLIC_ ones are shipped to every browser.", "S3", "medium",
         "mandatory",
         "a readable variable whose name or value looks like a credential (STRIPE_SECRET_KEY, a URL with a "
         "password) or is unknown; any credential in NEXT_PUBLIC_*",
         resource_check=iam_vercel_sensitive_env.check),
    Rule("PLAT-TLS-001", "Zones use Full (strict) TLS, TLS 1.2 or newer, TLS 1.3 on",
         "TLS is mandatory in transit, to the origin too, with a certificate that is checked.", "S1", "critical",
         "mandatory",
         "a zone without those settings (Cloudflare's defaults apply), other values, zone settings the rule does not "
         "know, custom hostnames below TLS 1.2",
         stack_check=tls_zone_settings.check),
    Rule("PLAT-TLS-002", "Plain HTTP is redirected to HTTPS",
         "No page or API answer may travel unencrypted.", "S1", "high", "mandatory",
         "a zone without Always Use HTTPS or an enabled `not ssl` redirect to https (disabled rules, other "
         "expressions or targets do not count)",
         stack_check=tls_https_redirect.check),
    Rule("PLAT-TLS-003", "HSTS as the stack requires",
         "HSTS keeps browsers off plain HTTP; how long is the stack's choice, not the profile's.", "S1", "high",
         "mandatory",
         "no HSTS, or less than a year with includeSubDomains and preload in prod (any stack not integration or "
         "staging), a day in staging, five minutes in integration",
         stack_check=tls_hsts.check),
    Rule("PLAT-WAF-001", "Every proxied hostname is behind the Managed and OWASP rulesets, running",
         "The WAF protects against the OWASP Top 10 only where it runs.", "S2", "critical", "mandatory",
         "a proxied host no enabled rule covers (in prod OWASP's coverage is PLAT-WAF-002's); skip rules but one "
         "custom rule skipping only rate limiting for one host and a header equal to a 32+ character secret; "
         "rulesets in other phases or not zone-level; a managed ruleset executed twice in one zone; overrides "
         "that disable or log the rulesets, categories or rules; a score threshold above 60; expressions it "
         "cannot read",
         stack_check=waf_covers_proxied_hosts.check),
    Rule("PLAT-WAF-002", "Production blocks OWASP matches",
         "Log-only mode detects attacks without stopping them; in prod it needs a waiver naming the tenant.", "S2",
         "high", "mandatory",
         "in prod (any stack not integration or staging) an OWASP action other than block or managed_challenge, "
         "ruleset-wide overrides included, or none at all; a proxied host left out of OWASP's execution",
         stack_check=waf_owasp_blocks_in_prod.check),
    Rule("PLAT-WAF-003", "Rate limits block, per client IP, with a bounded budget, on every proxied host",
         "An unbounded limit is no limit against scraping and credential stuffing.", "S2", "medium",
         "mandatory",
         "a proxied host no valid rule matches; log-only rules; counting on anything but ip.src (and cf.colo.id); "
         "counting expressions; budgets above the ceiling; expressions it cannot read",
         stack_check=waf_rate_limits.check, config_defaults={"max_requests_per_minute": 6000}),
    Rule("PLAT-DNS-001", "Web hosts' DNS records are proxied",
         "An unproxied record exposes the origin and bypasses the WAF.", "S2", "high", "mandatory",
         "an A, AAAA or CNAME record (dnsRecord or the deprecated record type) not proxied, but ACME DNS-01 "
         "challenges; unknown type, name or proxied",
         resource_check=dns_web_records_proxied.check),
    Rule("PLAT-DATA-001", "PocketBase runs one replica on a persistent volume",
         "SQLite takes one writer; without a volume every restart loses the data.", "C2, L3", "critical",
         "mandatory", "PocketBase (by name or image) on Cloud Run, without a volume at /pb/pb_data, or not one replica",
         resource_check=data_pocketbase_single_volume.check),
    Rule("PLAT-DATA-002", "PocketBase backs up daily, off the host outside integration",
         "Daily snapshots bound the data lost in a disaster; a backup on the same volume dies with it.",
         "C7, S4", "high", "mandatory",
         "a schedule less than daily; outside integration (by stack, whatever the backend) no S3 bucket over HTTPS",
         resource_check=data_pocketbase_backups.check),
    Rule("PLAT-DATA-003", "Redis is private and password-protected",
         "Sessions and commission results must not be readable from the internet.", "L4, S3", "critical",
         "mandatory",
         "Redis (by name or image) with a public port, domain, port published beyond loopback or host networking; "
         "no --requirepass or a password under 16 characters; Memorystore without AUTH and TLS",
         resource_check=data_redis_private.check),
    Rule("PLAT-DATA-005", "Cloud Run credentials come from Secret Manager, never literal values",
         "A literal environment value is readable by anyone who may view the service.", "S3", "high",
         "mandatory", "a literal variable whose name or value looks like a credential",
         resource_check=data_no_plaintext_secret_env.check),
    Rule("PLAT-DATA-004", "PocketBase is public only when the engine must reach it so",
         "Its admin UI is an attack surface; expose it only when no private path exists.", "S3", "high",
         "mandatory", "a public PocketBase on the engine's own backend",
         stack_check=data_pocketbase_private.check),
    Rule("PLAT-DATA-006", "Prod's PocketBase is replicated, backed up and restore-tested into its own buckets",
         "A day of orders lost, or a backup nobody ever restored, is no disaster recovery.", "C7, C8, S4, A5",
         "high", "mandatory",
         "in prod: no Litestream replica; backups or replica in a bucket the stack does not declare; a bucket "
         "without versioning or retention, with public access, soft delete off, or fewer days kept than asked; "
         "no restore test at least weekly; the replica in the backups' region",
         stack_check=data_disaster_recovery.check, config_defaults={"min_backup_days": 30}),
    Rule("PLAT-DATA-007", "Prod with a failover region keeps a standby there and serves from one region at a time",
         "Losing the primary region must not lose the API or the orders (C8, C9); two running PocketBases are two "
         "writers of one replica.", "C8, C9", "high", "mandatory",
         "in prod with a failover region: no PocketBase VM, or no Cloud Run engine with a serverless NEG and "
         "Direct VPC egress, in that region; a platform-serving label other than platform:gcp.serving says; two "
         "PocketBase VMs running, or the serving region's stopped; the load balancer's backend in the region that "
         "does not serve",
         stack_check=data_failover_standby.check),
    Rule("PLAT-SCALE-001", "The engine keeps at least one warm instance outside integration",
         "Cold starts break the latency SLO (M1) for the first requests.", "C1", "high", "mandatory",
         "an engine (by name or image) that scales to zero in any stack but integration",
         resource_check=scale_engine_replicas.check_warm),
    Rule("PLAT-SCALE-002", "The engine scales to at most the reviewed bound",
         "Past 3 to 5 instances PocketBase, not the engine, is the bottleneck, and cost grows.", "C1, A6",
         "medium", "mandatory", "more instances than the bound, or a bound it cannot read",
         resource_check=scale_engine_replicas.check_ceiling, config_defaults={"max_instances": 5}),
    Rule("PLAT-SIZE-001", "PocketBase stays within 2 vCPU and 4 GiB",
         "Past that the document plans a move to Postgres, not a bigger SQLite.", "C2, A7", "medium",
         "mandatory", "a bigger PocketBase, or one whose size cannot be read",
         resource_check=size_within_document.check_pocketbase,
         config_defaults={"max_vcpus": 2, "max_memory_gib": 4}),
    Rule("PLAT-SIZE-002", "Redis stays within 2 vCPU and 4 GiB",
         "A cache of 5-minute results needs little; growth is a miss-rate review.", "C3", "medium",
         "mandatory", "a bigger Redis, or one whose size cannot be read",
         resource_check=size_within_document.check_redis,
         config_defaults={"max_vcpus": 2, "max_memory_gib": 4}),
    Rule("PLAT-VM-001", "A Compute Engine VM runs PocketBase, within 1-2 vCPU and 2-4 GiB",
         "The container size rules do not see a VM; prod's PocketBase runs on one (C2: 1 vCPU + 2 GB, "
         "2 + 4 at peaks).", "C2, A7", "medium", "mandatory",
         "a VM whose service (by image or name) is not PocketBase; a machine type whose size the pack does not "
         "know; fewer or more vCPUs or GiB than the bounds",
         resource_check=compute_vm.check_size,
         config_defaults={"min_vcpus": 1, "max_vcpus": 2, "min_memory_gib": 2, "max_memory_gib": 4}),
    Rule("PLAT-VM-002", "PocketBase on a VM backs up daily, off the host outside integration",
         "Daily snapshots bound the data lost in a disaster (C7); the VM's settings are its docker run's.",
         "C7, S4", "high", "mandatory",
         "a VM's docker run that cannot be read, a schedule less than daily, outside integration no S3 bucket "
         "over HTTPS (the user-data is judged when known, at apply)",
         resource_check=data_vm_backups.check),
    Rule("PLAT-VM-003", "VMs have no external address and no firewall opens them to the internet",
         "PocketBase's admin UI on a VM is reachable only inside the VPC.", "S3", "critical", "mandatory",
         "an access config on a VM's interface, unknown interfaces; an ingress rule reaching a VM (by tag, "
         "service account, or no target) whose sources are not private ranges, are unknown or are absent "
         "(0.0.0.0/0)",
         stack_check=compute_vm.check_exposure),
    Rule("PLAT-LOG-001", "Cloud Logging keeps logs at least 90 days",
         "Audit logs must be kept 90 days; Cloud Logging keeps 30 unless told.", "S5", "high", "mandatory",
         "Cloud Run without a _Default bucket config, or a bucket kept under 90 days",
         stack_check=logs_retention.check_cloud_logging, config_defaults={"min_days": 90}),
    Rule("PLAT-LOG-002", "Railway services ship their logs to a 90-day sink",
         "Railway keeps logs 21 days at most.", "S5", "high", "mandatory",
         "Railway services whose logs reach no sink, or a sink kept under 90 days",
         stack_check=logs_retention.check_railway_sink,
         config_defaults={"min_days": 90, "sink_types": ["gcp:logging/projectSink:ProjectSink"]}),
    Rule("PLAT-IMG-001", "Services run images that cannot change under their name",
         "A moving tag makes a deploy unrepeatable and a rollback impossible.", "D2, D8", "high", "mandatory",
         "no tag, latest in any case, branch or partial-version tags, malformed digests; outside integration the "
         "engine and PocketBase by tag unless built here, or from another registry; in prod any image by tag "
         "unless built here",
         stack_check=image_immutable.check),
    Rule("PLAT-IMG-002", "Third-party images in staging are pinned by digest or rebuilt here",
         "Official images are rebuilt under the same version tag.", "D2, D8", "high", "mandatory",
         "a third-party image by tag in staging", stack_check=image_immutable.check_third_party),
    Rule("PLAT-TYPE-001", "Every resource type is one a rule of this pack reviews",
         "A type the pack has never seen has no rule that could refuse what it does; a class of evasion then "
         "passes as a whole.", "S3", "critical", "mandatory",
         "any type not in the reviewed-type table below (components of this program aside), and the types refused "
         "outright (page rules, zone settings overrides, IP access rules, project-wide VM metadata)",
         resource_check=reviewed_types.check),
    Rule("PLAT-TLS-004", "HTTPS load balancers run an SSL policy of TLS 1.2 or newer, MODERN or RESTRICTED",
         "Without one GCP's default COMPATIBLE policy admits TLS 1.0 and 1.1.", "S1", "high", "mandatory",
         "an HTTPS proxy without sslPolicy or naming one the stack does not declare; a policy below TLS_1_2, "
         "without a version, or with profile COMPATIBLE, CUSTOM, FIPS or none; tlsEarlyData PERMISSIVE or "
         "UNRESTRICTED (replayable 0-RTT requests)",
         stack_check=gcp_network.check_ssl_policies),
    Rule("PLAT-TLS-005", "Plain-HTTP load balancer frontends only redirect to HTTPS",
         "No API answer may travel unencrypted, at the origin either.", "S1", "high", "mandatory",
         "a target HTTP proxy whose URL map is not a redirect of everything to HTTPS (a default service, path "
         "matchers or host rules), or a map it cannot find; a forwarding rule to a target the stack does not "
         "declare, 443 to anything but an HTTPS proxy, 80 to anything but a redirect-only HTTP proxy, other ports",
         stack_check=gcp_network.check_plain_http),
    Rule("PLAT-TLS-006", "Private TLS: a strong key and a server certificate for private addresses only",
         "A CA flag, client or signing uses, a public name or a weak key turn PocketBase's pinned certificate into one "
         "that vouches for more than the VMs' private addresses.", "S1, S3", "high", "mandatory",
         "keys other than ECDSA P256/P384 or RSA >= 3072 bits (the RSA default of 2048 included); certificates that "
         "are "
         "a CA or not explicitly not, with uses beyond server_auth/digital_signature/key_encipherment, valid over 825 "
         "days, naming a non-RFC-1918/ULA address, a DNS name outside .internal, a URI, or nothing",
         resource_check=tls_private_cert.check),
    Rule("PLAT-PROV-001", "Explicit providers point at the provider's own API, over verified HTTPS",
         "A provider's endpoint, TLS flag or credential sends every call of its resources, with the deploy's "
         "credentials, wherever it says.", "S3", "critical", "mandatory",
         "a pulumi:providers:<package> input other than the keys the program sets (gcp project/region, vercel team, "
         "grafana url/orgId/auth/httpHeaders, docker host/ssh/TLS material; version), a grafana url not https://",
         resource_check=providers.check),
    Rule("PLAT-NET-001", "No ingress firewall admits the internet",
         "A VM or load balancer backend reachable from anywhere skips the edge.", "S3", "critical", "mandatory",
         "ingress allow rules with public or unknown sources, or no source at all (0.0.0.0/0), but Google's "
         "health checkers 35.191.0.0/16 and 130.211.0.0/22; private means RFC 1918 or fc00::/7 only (not Python's "
         "is_private: ::ffff:0:0/96, 2001::/23, 198.18.0.0/15 are refused); any direction but exactly EGRESS is "
         "ingress",
         resource_check=gcp_network.check_firewall),
    Rule("PLAT-NET-002", "Cloud Armor denies by default and admits only requests carrying the edge's gate header",
         "An allow-list is no list when everyone else is allowed; Cloudflare's addresses alone admit every "
         "Cloudflare customer's zone pointed at the load balancer.",
         "S2, S3", "high", "mandatory", "a security policy without a default rule (priority 2147483647) or whose "
         "default action is not deny; an enforced non-deny rule whose expression is not "
         "`request.headers['x-origin-gate'] == '<value>' && (...)`; any deny in preview; an EXTERNAL(_MANAGED) backend "
         "service without securityPolicy or naming one the stack does not declare",
         stack_check=gcp_network.check_armor_stack),
    Rule("PLAT-NET-003", "The load balancer answers the API's host alone",
         "A default service serves any Host: another Cloudflare customer's zone pointed at our address reaches the "
         "engine.", "S2, S3", "high", "mandatory",
         "a URL map with defaultService or a defaultRouteAction with backends; host rules with `*`",
         resource_check=gcp_network.check_url_map),
    Rule("PLAT-VM-004", "VMs: no serial port, OS Login, no project SSH keys, secure boot, no external address, no "
         "credential in metadata", "Each is a way onto the VM or to its secrets around IAM and the firewall.", "S3",
         "high", "mandatory",
         "serial-port-enable on, enable-oslogin or block-project-ssh-keys not TRUE, secure boot off, an access "
         "config, a literal password, token or private key in startup-script, user-data or any metadata key, a "
         "literal Authorization header, docker login --password, a URL with user:password@, a signed URL",
         resource_check=gcp_network.check_vm_hardening),
    Rule("PLAT-LOG-003", "Reads of the data leave a record kept 90 days",
         "A read of the whole database must name who read it (S5).", "S5", "high", "mandatory",
         "a project holding Cloud Storage data without Data Access audit logs (DATA_READ and DATA_WRITE for "
         "storage.googleapis.com), with exempted members, or a _Default log bucket kept under 90 days",
         stack_check=gcp_storage_logging.check_audit, config_defaults={"min_days": 90}),
    Rule("PLAT-LOG-004", "Subnets carry flow logs and NAT logs its translations",
         "Who talked to the database, and where the VM sent data, leave a network record.", "S5", "medium",
         "mandatory", "a subnetwork without logConfig (checkov CKV_GCP_26), sampling 0 or a filter; a Cloud NAT "
         "not logging ALL or TRANSLATIONS_ONLY; an auto-mode network (autoCreateSubnetworks not false)",
         resource_check=gcp_network.check_network_logs),
    Rule("PLAT-LOG-005", "No log exclusion drops audit logs",
         "An exclusion is the quiet way to erase the audit trail (S5).", "S5", "high", "mandatory",
         "an enabled exclusion (or a sink's) whose filter does not keep cloudaudit.googleapis.com, names audit logs, "
         "widens with OR or cannot be read; a disabled _Default or _Required sink",
         resource_check=gcp_storage_logging.check_log_exclusions),
    Rule("PLAT-DATA-008", "Buckets: public access prevented, uniform access, versions kept, access logged",
         "A bucket of backups is the whole database; a read of it must leave a record (checkov CKV_GCP_62).",
         "S3, S5", "high", "mandatory",
         "publicAccessPrevention not enforced, object ACLs, no versioning, no access logging or logging to itself or "
         "to a bucket that is not the stack's access-log bucket; an access-log bucket kept under 90 days",
         stack_check=gcp_storage_logging.check_buckets, config_defaults={"min_days": 90}),
    Rule("PLAT-DNS-002", "DNS records are A, AAAA, CNAME, TXT, CAA or MX",
         "An NS record hands a name (a tenant's subdomain) to other name servers, around the edge.", "S2", "high",
         "mandatory", "NS, DS and every other record type", resource_check=cloudflare_meaning.check_record_kind),
    Rule("PLAT-EDGE-001", "The edge caches only reviewed public paths of one host",
         "A cached authenticated answer is served to the next client.", "S2, C5", "high", "mandatory",
         "a cache rule caching anything but `http.host eq ... and starts_with(path, <allowed prefix>)`; cache keys "
         "over headers", resource_check=cloudflare_meaning.check_cache_rules,
         config_defaults={"allowed_cache_paths": ["/v1/catalog/"]}),
    Rule("PLAT-EDGE-002", "Request headers (the origin secret) go only to hosts the stack proxies",
         "Under `true` or a negation the origin secret reaches any host of the zone.", "S2", "critical",
         "mandatory", "a header rule whose expression is not http.host eq/in hosts this stack proxies; the "
         "storefront's x-storefront-edge-auth on any host that is not a domain of the stack's Vercel project",
         stack_check=cloudflare_meaning.check_header_transforms),
    Rule("PLAT-EDGE-003", "Tunnels route one hostname each, never to PocketBase, operator UIs only behind Access, "
         "and end in a 404",
         "A tunnel route is a public door; PocketBase's admin UI must have none, Grafana's one Access guards.", "S3",
         "critical", "mandatory",
         "a route to PocketBase (by host or port 8090) or a path under /_/, a route for any host, no catch-all "
         "http_status:404, noTlsVerify, a route to Grafana or Prometheus (by name or port 3000, 9090, 9093) without "
         "a self_hosted Access application on its host; any route but api -> http://commission-engine:8000 and "
         "grafana -> http://grafana:3000; a tunnel whose configSrc is not cloudflare (routes in a local file); "
         "noTlsVerify in the top-level originRequest too", stack_check=cloudflare_meaning.check_tunnels),
    Rule("PLAT-EDGE-004", "Configuration rules change no zone setting the pack does not know",
         "Zone settings per request are zone settings.", "S2", "high", "mandatory",
         "configuration-rule settings off the list (disable_waf, disable_apps, ...), securityLevel off, bic off",
         resource_check=cloudflare_meaning.check_config_rules),
    Rule("PLAT-EDGE-005", "Cloudflare Access admits named people or the deploy's one service token, for a bounded "
         "time", "An Access policy that admits everyone, an e-mail domain or any service token, or bypasses, opens "
         "the operator's UI to the internet.", "S3", "critical", "mandatory",
         "decision bypass; allow includes other than email/emailList (everyone, emailDomain, ip, geo, groups, "
         "anyValidServiceToken); non_identity other than exactly one serviceToken; application or policy sessions "
         "over max_session_hours; an application not self_hosted, without policy references, with inline policies or "
         "optionsPreflightBypass; a service token lasting forever or over max_service_token_hours, or a second one",
         stack_check=cloudflare_access.check,
         config_defaults={"max_session_hours": 24, "max_service_token_hours": 8760}),
    Rule("PLAT-FE-003", "Vercel's firewall denies production requests the edge did not forward",
         "The storefront's *.vercel.app URLs and domains answer around the edge's WAF and rate limits otherwise.",
         "S2", "critical", "mandatory",
         "a firewall not explicitly enabled; no active deny of production requests without x-storefront-edge-auth "
         "and of those with a different value (a group narrowed by any other condition does not count); any bypass "
         "rule or IP rule; unknown rules", resource_check=vercel_firewall.check),
    Rule("PLAT-FE-001", "Vercel: fork protection on, previews protected, no bypass secret",
         "A pull request's preview runs code nobody reviewed with the project's variables.", "S3", "high",
         "mandatory", "gitForkProtection not explicitly true; vercelAuthentication and passwordProtection both "
         "off or none; protectionBypassForAutomation; optionsAllowlist; publicSource; a project domain serving a "
         "gitBranch or redirecting to a host that is no other domain of the stack's storefront",
         stack_check=saas_meaning.check_vercel_stack),
    Rule("PLAT-FE-002", "Vercel credentials reach production only",
         "A preview builds a pull request's code, which reads its target's variables.", "S3", "high", "mandatory",
         "a sensitive or credential-named variable targeting preview, development, custom environments or all; "
         "variables inline on the project (environments)",
         resource_check=saas_meaning.check_vercel_env),
    Rule("PLAT-OBS-001", "Alerts travel over HTTPS and page when data stops",
         "A paused rule or no-data-as-OK page is a silent outage; a webhook over HTTP leaks its token.", "M5, S1",
         "high", "mandatory", "contact point URLs over http://, paused rules, noDataState OK on severity=page rules; "
         "paging rules whose noDataState is not NoData/Alerting or execErrState not Error/Alerting; mute or active "
         "timings on the severity=page route",
         resource_check=saas_meaning.check_grafana),
    Rule("PLAT-CTR-001", "Containers are unprivileged and reach no runtime socket",
         "A privileged container or the Docker socket is root on the host.", "S3", "critical", "mandatory",
         "privileged, capabilities beyond the harmless, host PID/IPC/user/cgroup namespaces, host devices, a bind of "
         "docker.sock, containerd, CRI-O or podman sockets (read-only included); volumes with another driver or "
         "driverOpts (a bind of the host), a volumeName the stack does not declare; never waived, in any stack",
         stack_check=saas_meaning.check_containers),
    Rule("PLAT-DATA-009", "No literal credential in a container's command line",
         "A command line is readable by whoever may view the service and by every process on the host.", "S3",
         "high", "mandatory", "a --password/--token/--requirepass style flag with a literal value, or NAME=value "
         "assignments of credentials, in a docker, Cloud Run or Railway command",
         resource_check=saas_meaning.check_command_secrets),
    Rule("PLAT-DATA-010", "Cloud SQL is reachable only at its private address, over TLS",
         "The engine's orders and commissions must never be one password away from the internet (S1, S3).", "S1, S3",
         "high", "mandatory",
         "a Cloud SQL instance with a public IPv4 address (ipv4Enabled unset or true), authorized networks, Data API "
         "access, no private network, an sslMode that admits plain TCP, Private Service Connect (pscConfigs on), "
         "a private path for Google services, a server CA other than the per-instance one, or an ipConfiguration "
         "key the rule has not reviewed",
         resource_check=data_cloudsql.check_private),
    Rule("PLAT-DATA-011", "Cloud SQL is backed up with point-in-time recovery, highly available in prod, and "
         "protected from deletion",
         "Managed Postgres is the answer to A7 only with replication and automatic backups (C7).", "A7, C7, S4",
         "high", "mandatory",
         "a primary without automated backups, without point-in-time recovery, keeping fewer backups than "
         "min_backup_days (or not counted as COUNT), keeping transaction logs fewer than min_log_retention_days "
         "days with PITR on, or ZONAL in prod; any instance with deletionProtection false or "
         "settings.deletionProtectionEnabled not true",
         resource_check=data_cloudsql.check_protected,
         config_defaults={"min_backup_days": 7, "min_log_retention_days": 7}),
    Rule("PLAT-DATA-012", "Prod's Cloud SQL primary has a read replica in another region",
         "Losing the primary region must not lose the orders (C8).", "C8", "high", "mandatory",
         "in prod: a primary with no read replica, or only replicas in its own region",
         stack_check=data_cloudsql.check_replica),
    Rule("PLAT-DATA-013", "A Cloud SQL user's password is generated",
         "A typed password is a guessable, reused and shared one (S3).", "S3", "high", "mandatory",
         "a built-in user without a password, or with a known one under 32 characters; an IAM (CLOUD_IAM_*) user "
         "or the cloudsql.iam_authentication flag on, which the platform does not declare; a rootPassword on an "
         "instance",
         resource_check=data_cloudsql.check_user),
    Rule("PLAT-DATA-014", "A Cloud Run service signs in to Cloud SQL as a role made in SQL, not as a Cloud SQL user",
         "Users the Cloud SQL API creates are cloudsqlsuperuser members with CREATEROLE and CREATEDB, which can take "
         "the schema owner's rights: the engine's account must hold only what it uses (#26).", "S3", "high",
         "mandatory",
         "a BUILT_IN gcp.sql.User whose name is the POSTGRES_USER of a Cloud Run service",
         stack_check=data_cloudsql.check_engine_login),
    Rule("PLAT-SECRET-001", "Generated credentials are long and secret values stay Pulumi secrets",
         "A short password is guessed; a secret version in plain text is readable by whoever reads the state.", "S3",
         "high", "mandatory", "a RandomPassword shorter than 16 characters (or of unknown length); a Secret Manager "
         "version whose secretData is not a Pulumi secret",
         resource_check=secrets_generated.check, config_defaults={"min_length": 16}),
    Rule(WAIVER_RULE, "Waivers are narrow, dated and checked",
         "A waiver that outlives its reason, or waives more than it names, hides the next regression.", "S3",
         "high", "mandatory",
         "a waiver without subject, expiry (at most 90 days ahead) or ticket, with a filler reason, for an unknown "
         "rule or resource, for a rule the resource does not break for that subject, or for an IAM rule in prod",
         stack_check=_check_waivers),
)

RULES_BY_ID = {rule.id: rule for rule in RULES}
_SEVERITY = {"low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH, "critical": Severity.CRITICAL}
_LEVEL = {"advisory": EnforcementLevel.ADVISORY, "mandatory": EnforcementLevel.MANDATORY}


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# ---------------------------------------------------------------------------------------------
# Config: defaults, and what a given config may change


def rule_config(rule: Rule, given: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's settings: a config may tighten a limit, never loosen it (`max_*` only down, `min_*`
    only up, `allowed_*` only a subset); waivers are read apart."""
    config: dict[str, Any] = {**(rule.config_defaults or {}), "waivers": []}
    for key, value in given.items():
        default: Any = (rule.config_defaults or {}).get(key)
        if key == "waivers":
            config[key] = value
        elif key.startswith("max_") and isinstance(value, int | float) and isinstance(default, int | float):
            config[key] = min(value, default)
        elif key.startswith("min_") and isinstance(value, int | float) and isinstance(default, int | float):
            config[key] = max(value, default)
        elif key.startswith("allowed_") and isinstance(value, list) and isinstance(default, list):
            config[key] = [v for v in cast(list[Any], value) if v in default]
        elif key in config and isinstance(value, type(cast(object, default))):
            config[key] = value
    return config


_WAIVER_SCHEMA: dict[str, Any] = {
    "type": "array", "description": "waivers: [{resource, subject, expires, ticket, reason}] (policies/waivers.py)",
    "items": {"type": "object", "required": list(waiver_rules.FIELDS),
              "properties": {f: {"type": "string"} for f in ("rule", *waiver_rules.FIELDS)},
              "additionalProperties": False}}


def _schema(rule: Rule) -> PolicyConfigSchema:
    properties: dict[str, dict[str, Any]] = {"waivers": _WAIVER_SCHEMA}
    for key, default in (rule.config_defaults or {}).items():
        kind = "array" if isinstance(default, list) else "integer" if isinstance(default, int) else "string"
        properties[key] = {"type": kind, "default": default}
    return PolicyConfigSchema(properties=properties)


# ---------------------------------------------------------------------------------------------
# Running a rule: plain inputs, errors as messages, waivers applied


def plain(value: Any) -> Any:
    """CrossGuard's property proxies as plain data, each value the engine does not know as UNKNOWN.

    pulumi_policy (1.21) wraps properties in proxies that raise on an unknown value; the proxy's
    `"__target"` key returns what it wraps. Sentinels: pulumi_policy/proxy.py, UNKNOWN_*_VALUE.
    """
    if type(value).__name__ in ("_DictProxy", "_ListProxy"):
        value = value["__target"]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in cast(Mapping[Any, Any], value).items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in cast(Sequence[Any], value)]
    if isinstance(value, str) and value in _UNKNOWN_SENTINELS:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire has only doubles; the provider schemas say integer
    return value


_UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff"})


SECRET_KEYS_MARK = "__secretKeys"
"""Where the pack keeps which top-level inputs were secret. pulumi_policy 1.21's Analyze and AnalyzeStack unwrap
every secret envelope (policy.py: `deserialize_properties(...)` without proxy_secrets), so a rule could not tell a
value kept secret from one in plain text in the state; the engine never sends `__` keys to an analyzer
(analyzer_plugin.go, SkipInternalKeys), so the mark cannot collide with an input."""
_SIG_KEY, _SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
_deserialize = _policy_module.deserialize_properties  # pyright: ignore[reportPrivateImportUsage]


def _deserialize_marking_secrets(props: dict[str, Any], proxy_secrets: bool = False) -> dict[str, Any]:
    result = _deserialize(props, proxy_secrets)
    secret = sorted(k for k, v in props.items() if isinstance(v, Mapping)
                    and cast(Mapping[str, Any], v).get(_SIG_KEY) == _SECRET_SIG)
    if secret:
        result[SECRET_KEYS_MARK] = secret
    return result


_policy_module.deserialize_properties = _deserialize_marking_secrets  # pyright: ignore[reportPrivateImportUsage]


def resource_of(resource_type: str, name: str, urn: str, props: Any) -> Resource:
    """A rule's view of a resource: plain inputs, and which of them were secret."""
    data = dict(plain(props))
    secret = data.pop(SECRET_KEYS_MARK, None)
    return Resource(resource_type, name, urn, data, frozenset(str(k) for k in as_list(secret)))


def _error(rule: Rule, exc: Exception) -> str:
    return (f"{rule.id} could not read these inputs ({type(exc).__name__}: {str(exc)[:200]}); expected inputs "
            "the rule can judge, so it refuses them")


def evaluate(rule: Rule, resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Violation]]:
    """Every violation of the rule over `resources`, before waivers; a rule error is a violation too."""
    out: list[tuple[str, Violation]] = []
    if rule.resource_check is not None:
        for resource in resources:
            try:
                verdict = rule.resource_check(resource, config)
            except Exception as exc:  # a clean message, never a traceback (item 11)
                out.append((resource.urn, Violation(_error(rule, exc))))
                continue
            if not isinstance(verdict, NotApplicable):
                out += [(resource.urn, as_violation(f, resource.name)) for f in verdict]
    elif rule.stack_check is not None:
        try:
            found = rule.stack_check(resources, config)
        except Exception as exc:
            return [("", Violation(_error(rule, exc)))]
        out += [(urn, as_violation(f, urn.rsplit("::", 1)[-1])) for urn, f in found]
    return out


def apply_waivers(rule: Rule, violations: list[tuple[str, Violation]], config: Mapping[str, Any],
                  resources: Sequence[Resource] | None) -> tuple[list[tuple[str, Violation]], list[str]]:
    """(violations left, reasons of the waivers that covered the rest)."""
    if not violations:
        return [], []
    stack = next((urn.split("::", 1)[0].removeprefix("urn:pulumi:") for urn, _ in violations if urn), "prod")
    valid = waiver_rules.parse(config.get("waivers"), rule.id, stack, today(), rule.iam)
    left: list[tuple[str, Violation]] = []
    reasons: list[str] = []
    for urn, violation in violations:
        name = urn.rsplit("::", 1)[-1]
        mine = [w for w in valid if w.resource == name]
        covered: set[str] = set()
        for w in mine:
            covered |= waiver_rules.subject_hosts(w.subject, name, resources) if resources is not None \
                else ({w.subject} if w.subject in (name, *violation.subjects) else set())
        if violation.subjects and set(violation.subjects) <= covered:
            reasons += [f"waived for {name} ({w.subject}) until {w.expires}, {w.ticket}: {w.reason}" for w in mine]
        else:
            left.append((urn, violation))
    return left, reasons


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        config = rule_config(rule, args.get_config() or {})
        resource = resource_of(args.resource_type, args.name, args.urn, args.props)
        assert rule.resource_check is not None
        try:
            verdict = rule.resource_check(resource, config)
        except Exception as exc:
            report(_error(rule, exc), None)
            return
        if isinstance(verdict, NotApplicable):
            args.not_applicable(verdict.reason)
            return
        violations = [(resource.urn, as_violation(f, resource.name)) for f in verdict]
        left, reasons = apply_waivers(rule, violations, config, None)
        for _, violation in left:
            report(violation.message, None)
        if reasons and not left:
            args.not_applicable("; ".join(reasons))

    return ResourceValidationPolicy(name=rule.id, description=rule.title, validate=validate,
                                    enforcement_level=_LEVEL[rule.level], severity=_SEVERITY[rule.severity],
                                    config_schema=_schema(rule))


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        config = rule_config(rule, args.get_config() or {})
        resources = [resource_of(r.resource_type, r.name, r.urn, r.props) for r in args.resources]
        found = evaluate(rule, resources, config)
        # PLAT-WAIVER-001's own findings are never waived.
        left, reasons = (found, []) if rule.id == WAIVER_RULE else apply_waivers(rule, found, config, resources)
        for urn, violation in left:
            report(violation.message, urn or None)
        if reasons and not left:
            args.not_applicable("; ".join(reasons))

    return StackValidationPolicy(name=rule.id, description=rule.title, validate=validate,
                                 enforcement_level=_LEVEL[rule.level], severity=_SEVERITY[rule.severity],
                                 config_schema=_schema(rule))


# ---------------------------------------------------------------------------------------------
# PLAT-WAIVER-001


def check_waivers(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    by_name = {r.name: r for r in resources}
    stack = resources[0].stack if resources else "prod"
    out: list[tuple[str, Finding]] = []
    for i, raw in enumerate(as_list(config.get("waivers"))):
        entry = as_map(raw)
        rule = RULES_BY_ID.get(str(entry.get("rule")))
        resource = by_name.get(str(entry.get("resource")))
        urn = resource.urn if resource is not None else ""
        label = f"waiver {i} ({entry.get('rule')} for {entry.get('resource')}, subject {entry.get('subject')})"
        if rule is None or rule.id == WAIVER_RULE:
            out.append((urn, f"{label}: {entry.get('rule')!r} is not a rule this pack can waive"))
            continue
        problems = waiver_rules.field_problems(entry, rule.id, stack, today(), rule.iam)
        if problems:
            out += [(urn, f"{label}: {field} {problem}") for field, problem in problems]
            continue
        if resource is None:
            out.append((urn, f"{label}: this stack declares no resource {entry.get('resource')!r}; expected the "
                             "waiver removed, or the resource's exact name"))
            continue
        hosts = waiver_rules.subject_hosts(str(entry["subject"]), resource.name, resources)
        if not hosts:
            out.append((urn, f"{label}: subject {entry.get('subject')!r} is not a tenant of this stack, one of its "
                             "hosts, nor the resource itself; expected the one tenant or host the waiver is for"))
            continue
        found = [v for u, v in evaluate(rule, resources, rule_config(rule, {})) if u == resource.urn]
        if not any(v.subjects and set(v.subjects) <= hosts for v in found):
            out.append((urn, f"{label}: {rule.id} finds nothing on {resource.name} for {entry.get('subject')!r}, "
                             "so the waiver waives nothing (fixed, or never broken); expected it removed"))
    return out


def build_pack() -> PolicyPack:
    policies: list[Policy] = [_resource_policy(r) if r.resource_check is not None else _stack_policy(r)
                              for r in RULES]
    return PolicyPack(name=PACK_NAME, policies=policies, enforcement_level=EnforcementLevel.MANDATORY,
                      description="Least-privilege IAM and the architecture document's security rules")
