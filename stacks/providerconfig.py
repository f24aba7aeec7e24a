"""What a stack file may say to the providers the program uses (issue #22 item 13).

Provider configuration is part of the stack: `cloudflare:`, `gcp:`, `vercel:`, `grafana:` and `docker:` keys
configure the default providers every resource of that package goes through, so one key can send every call,
with the deploy job's credentials, to another host. Each namespace the program reads has an allowlist of the
keys it expects, with their format; any other key (a typo, an endpoint override, a TLS flag, a credential) is
refused, and so is any namespace the program does not read.

Credentials are never in a stack file, not even as `secure:` values: a preview decrypts the stack's config
for the pull request's program (issue #22 item 1). Each provider reads its credential from the deploy job's
environment instead (sources below, quoted from the installed SDKs' `config/vars.py`).

The key lists of each provider are read from its SDK (`<package>/config/vars.py`, one
`__config__.get('<key>')` per key), so a key the provider does not have is named as such.
"""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml

Check = Callable[[str], str | None]
"""A value's format check: None when it is fine, else `<what is wrong>; expected <what>`."""


@dataclass(frozen=True)
class Namespace:
    name: str
    sdk: str | None
    """The package whose `config/vars.py` lists the provider's keys (None: `pulumi:`, not a provider)."""
    allowed: Mapping[str, Check]
    """The keys the program expects, each with its format check."""
    credentials: Mapping[str, str] = field(default_factory=dict[str, str])
    """Credential keys, each with where the deploy job provides it instead."""
    endpoints: frozenset[str] = frozenset()
    """Keys that move the provider's API (or one of its APIs) to another URL."""
    tls: frozenset[str] = frozenset()
    """Keys that weaken or replace TLS verification."""
    secret_allowed: frozenset[str] = frozenset()
    """Allowed keys that may (must) be `secure:`; every other allowed key is plain text, so checks read it."""

    def is_endpoint(self, key: str) -> bool:
        return key in self.endpoints or (self.name == "gcp" and key.endswith("CustomEndpoint"))


# ---------------------------------------------------------------------------------------------
# Formats


def _gcp_project(value: str) -> str | None:
    # "must be 6 to 30 characters ... can contain only lowercase letters, digits, and hyphens. It must start
    # with a letter, and cannot have a trailing hyphen"
    # (cloud.google.com/resource-manager/docs/creating-managing-projects).
    if re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", value):
        return None
    return "is not a Google Cloud project id; expected 6 to 30 lowercase letters, digits and hyphens, starting " \
           "with a letter (cloud.google.com/resource-manager/docs/creating-managing-projects)"


def _gcp_region(value: str) -> str | None:
    if re.fullmatch(r"[a-z]+-[a-z]+[0-9]+", value):
        return None
    return "is not a Google Cloud region; expected a region name such as southamerica-east1"


def _vercel_team(value: str) -> str | None:
    # "either a team slug, or team ID" (pulumiverse_vercel/config/vars.py, `team`).
    if re.fullmatch(r"team_[A-Za-z0-9]+|[a-z0-9][a-z0-9-]{0,47}", value):
        return None
    return "is not a Vercel team id or slug; expected team_... or a slug"


def https_url_problem(value: str) -> str | None:
    """An https:// URL naming a host, without credentials, query or fragment; else what is wrong."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "is not a URL; expected https://HOST"
    del port
    if parts.scheme.lower() != "https":
        return "is not an https:// URL: the provider would send the deploy's credentials in clear text; expected " \
               "https://HOST"
    if not parts.hostname:
        return "names no host; expected https://HOST"
    if not parts.hostname.isascii():
        return "has a non-ASCII host, which IDNA maps onto another name (a fullwidth letter becomes its ASCII one) " \
               "and escapes comparisons with other stacks; expected https://HOST in ASCII (punycode xn-- labels)"
    if parts.hostname.endswith("."):
        return "has a host with a trailing dot, the same host as without it to the resolver but not to comparisons " \
               "with other stacks; expected https://HOST without the trailing dot"
    if parts.username is not None or parts.password is not None:
        return "carries credentials in the URL; expected https://HOST (credentials come from the deploy job's " \
               "environment)"
    if parts.query or parts.fragment:
        return "has a query or fragment; expected https://HOST[/PATH]"
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    return "is an IP address, for which no certificate names the host; expected https://HOST"


GRAFANA_CLOUD_URL = re.compile(r"https://[a-z0-9-]+\.grafana\.net/?")
"""A Grafana Cloud stack's URL: https://<stack slug>.grafana.net ("Each stack ... has its own URL",
grafana.com/docs/grafana-cloud/account-management/cloud-stacks/); no port, path, userinfo or trailing dot."""


def grafana_cloud_url_problem(value: str) -> str | None:
    """For a stack on Grafana Cloud: the deploy sends its GRAFANA_AUTH (a Grafana Cloud token) to grafana:url
    (pulumiverse_grafana/config/vars.py: `auth` falls back to GRAFANA_AUTH, `url` is "The root URL of a Grafana
    server"), so no other host than a Grafana Cloud stack's."""
    if GRAFANA_CLOUD_URL.fullmatch(value):
        return None
    return "is not a Grafana Cloud stack's URL, and the deploy sends its Grafana Cloud token (GRAFANA_AUTH) to " \
           "this URL's host; expected https://<stack>.grafana.net (lowercase ASCII, no port, path, user or " \
           "trailing dot)"


def _positive_int(value: str) -> str | None:
    try:
        number = json.loads(value)
    except ValueError:
        number = None
    if isinstance(number, int) and not isinstance(number, bool) and number >= 1:
        return None
    return "is not an organization id; expected a whole number from 1"


def _anything(value: str) -> str | None:
    del value
    return None  # checked with the stack's backends (components/backends/docker.py, host_problems)


# ---------------------------------------------------------------------------------------------
# The namespaces the program reads

GRAFANA_ENV = "GRAFANA_AUTH"


def _from_env(variable: str, note: str = "") -> str:
    what = f"the provider reads {variable}" if variable else "the provider reads it"
    return f"{what} from the deploy job's environment" + (f" ({note})" if note else "")


NAMESPACES: dict[str, Namespace] = {ns.name: ns for ns in (
    Namespace(
        "gcp", "pulumi_gcp",
        allowed={"project": _gcp_project, "region": _gcp_region},
        # terraform-provider-google, provider reference (registry.terraform.io/providers/hashicorp/google/latest/
        # docs/guides/provider_reference): `credentials` is a service-account key file or its JSON (valid until
        # deleted), `access_token` a token (env GOOGLE_OAUTH_ACCESS_TOKEN); without either the provider uses
        # Application Default Credentials, which the deploy job gets from workload identity federation
        # (google-github-actions/auth writes GOOGLE_APPLICATION_CREDENTIALS, short-lived).
        credentials={
            "credentials": "a service-account key is long-lived (valid until deleted); the provider uses Application "
                           "Default Credentials, which the deploy job gets short-lived from workload identity "
                           "federation (google-github-actions/auth sets GOOGLE_APPLICATION_CREDENTIALS)",
            "accessToken": "the provider reads GOOGLE_OAUTH_ACCESS_TOKEN or Application Default Credentials from the "
                           "deploy job's environment (workload identity federation)",
            "externalCredentials": "the provider uses Application Default Credentials from the deploy job's workload "
                                   "identity federation (GOOGLE_APPLICATION_CREDENTIALS)",
        },
        endpoints=frozenset({"universeDomain"}),
    ),
    Namespace(
        "cloudflare", "pulumi_cloudflare",
        allowed={},
        # pulumi_cloudflare/config/vars.py: apiToken "Alternatively, can be configured using the
        # `CLOUDFLARE_API_TOKEN` environment variable"; apiKey `CLOUDFLARE_API_KEY`; apiUserServiceKey
        # `CLOUDFLARE_API_USER_SERVICE_KEY`; email `CLOUDFLARE_EMAIL` ("Required when using `api_key`").
        credentials={
            "apiToken": _from_env("CLOUDFLARE_API_TOKEN"),
            "apiKey": _from_env("CLOUDFLARE_API_TOKEN", "a global API key is never used"),
            "apiUserServiceKey": _from_env("CLOUDFLARE_API_TOKEN"),
            "email": _from_env("CLOUDFLARE_API_TOKEN", "an e-mail goes with a global API key"),
        },
        # baseUrl: "Value to override the default HTTP client base URL" (pulumi_cloudflare/config/vars.py);
        # apiBasePath and apiHostname are the same override in the provider's v4 (pulumi-cloudflare 5.x README,
        # "Configuration": `cloudflare:apiBasePath` "Configure the base path used by the API client", env
        # CLOUDFLARE_API_BASE_PATH; terraform-provider-cloudflare `consts.APIHostnameSchemaKey`).
        endpoints=frozenset({"baseUrl", "apiBasePath", "apiHostname"}),
    ),
    Namespace(
        "vercel", "pulumiverse_vercel",
        allowed={"team": _vercel_team},
        # pulumiverse_vercel/config/vars.py: apiToken "can also be specified with the `VERCEL_API_TOKEN` shell
        # environment variable".
        credentials={"apiToken": _from_env("VERCEL_API_TOKEN")},
    ),
    Namespace(
        "grafana", "pulumiverse_grafana",
        allowed={"url": https_url_problem, "orgId": _positive_int},
        # pulumiverse_grafana/config/vars.py: each key falls back to an environment variable, e.g.
        # `__config__.get('auth') or _utilities.get_env('GRAFANA_AUTH')`.
        credentials={
            "auth": _from_env(GRAFANA_ENV),
            "cloudAccessPolicyToken": _from_env("GRAFANA_CLOUD_ACCESS_POLICY_TOKEN"),
            "cloudProviderAccessToken": _from_env(""),
            "connectionsApiAccessToken": _from_env(""),
            "fleetManagementAuth": _from_env(""),
            "frontendO11yApiAccessToken": _from_env(""),
            "k6AccessToken": _from_env(""),
            "oncallAccessToken": _from_env("GRAFANA_ONCALL_ACCESS_TOKEN"),
            "smAccessToken": _from_env("GRAFANA_SM_ACCESS_TOKEN"),
            "tlsKey": _from_env("GRAFANA_TLS_KEY"),
            # "HTTP headers mapping keys to values used for accessing the Grafana and Grafana Cloud APIs": an
            # Authorization header is a credential, and any header is sent to every URL the provider calls.
            "httpHeaders": _from_env(GRAFANA_ENV),
        },
        endpoints=frozenset({"cloudApiUrl", "cloudProviderUrl", "connectionsApiUrl", "fleetManagementUrl",
                             "frontendO11yApiUrl", "k6Url", "oncallUrl", "smUrl"}),
        # insecureSkipVerify: "Skip TLS certificate verification"; caCert: "Certificate CA bundle ... to verify the
        # Grafana server's certificate" (a CA of the file's choosing); tlsCert: a client certificate.
        tls=frozenset({"insecureSkipVerify", "caCert", "tlsCert"}),
    ),
    Namespace(
        "docker", "pulumi_docker",
        # How the deploy reaches the Docker host (#20 item 10): ssh:// with a pinned host key, or tcp:// with TLS
        # client certificates, keyMaterial a secret (components/backends/docker.py checks the values).
        allowed={"host": _anything, "sshOpts": _anything, "certMaterial": _anything, "caMaterial": _anything,
                 "keyMaterial": _anything},
        credentials={"registryAuth": _from_env("", "docker login before the deploy")},
        # context: "Overrides the `host` if set" (pulumi_docker/config/vars.py); certPath: TLS material read
        # from a directory of the machine, not from the reviewed file.
        endpoints=frozenset({"context"}),
        tls=frozenset({"certPath"}),
        secret_allowed=frozenset({"keyMaterial"}),
    ),
    # pulumi_random and pulumiverse_time have no provider configuration.
    Namespace("random", "pulumi_random", allowed={}),
    Namespace("time", "pulumiverse_time", allowed={}),
    # `pulumi:` keys configure the engine (e.g. pulumi:disable-default-providers); the program reads none.
    Namespace("pulumi", None, allowed={}),
)}


@cache
def provider_keys(sdk: str) -> frozenset[str]:
    """Every config key the provider's SDK knows (`__config__.get('<key>')` in its config/vars.py)."""
    spec = importlib.util.find_spec(sdk)
    if spec is None or spec.origin is None:
        return frozenset()
    vars_py = Path(spec.origin).parent / "config" / "vars.py"
    try:
        text = vars_py.read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    return frozenset(re.findall(r"__config__\.get(?:_bool|_int|_float|_object)?\('([A-Za-z0-9_]+)'\)", text))


def _show(value: str) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def key_problems(values: Mapping[str, str], secret_keys: frozenset[str], platform: str) -> list[str]:
    """Every key outside `platform` that the program does not expect, or whose value has the wrong form.
    A credential's value is never shown."""
    problems: list[str] = []
    for full in sorted(values):
        if ":" not in full:
            continue
        namespace, key = full.split(":", 1)
        if namespace == platform:
            continue
        secret = full in secret_keys
        ns = NAMESPACES.get(namespace)
        if ns is None:
            read = ", ".join(sorted({platform, *(n for n in NAMESPACES if n != "pulumi")}))
            problems.append(f"{full}: is not a namespace this program reads; expected keys of: {read} (and no "
                            "credential in any: the deploy job provides those)")
            continue
        allowed = ", ".join(f"{namespace}:{k}" for k in sorted(ns.allowed)) or "none"
        shown = "[secret]" if secret else _show(values[full])
        if key in ns.credentials:
            form = "a secret" if secret else "in plain text"
            problems.append(f"{full}: is a credential, {form} in the stack file; credentials never go in a stack "
                            "file, not even as secrets (a preview decrypts the stack's config for the pull "
                            f"request's code); expected it removed: {ns.credentials[key]}")
        elif ns.is_endpoint(key):
            problems.append(f"{full}: {shown} overrides the {namespace} provider's API endpoint, so every call would "
                            "carry the deploy job's credentials there; expected it removed (the provider's own "
                            "endpoint)")
        elif key in ns.tls:
            problems.append(f"{full}: {shown} weakens TLS verification of the {namespace} provider's API (anyone on "
                            "the path could read the deploy's credentials); expected it removed")
        elif key in ns.allowed:
            if secret and key not in ns.secret_allowed:
                problems.append(f"{full}: is a secret, but it is not a credential and checks must read it; expected "
                                "it in plain text")
                continue
            problem = None if secret else ns.allowed[key](values[full])
            if problem is None and not secret and full == "grafana:url" and f"{platform}:grafanaCloud" in values:
                problem = grafana_cloud_url_problem(values[full])
            if problem is not None:
                problems.append(f"{full}: {shown} {problem}")
        else:
            known = provider_keys(ns.sdk) if ns.sdk else frozenset[str]()
            if ns.sdk and key not in known:
                hint = difflib.get_close_matches(key, sorted(ns.allowed), n=1)
                did_you_mean = f" (did you mean {namespace}:{hint[0]}?)" if hint else ""
                problems.append(f"{full}: is not a config key of the {namespace} provider ({ns.sdk}/config/vars.py)"
                                f"{did_you_mean}; expected only: {allowed}")
            else:
                problems.append(f"{full}: {shown} is not a key this program expects in the {namespace} namespace; "
                                f"expected only: {allowed}")
    return problems


def project_config_problems(project_file: Path) -> list[str]:
    """Config in the project file (`Pulumi.yaml`'s `config:`) gives every stack its values, merged with the stack
    file's (project-level config, Pulumi 3.44+; github.com/pulumi/pulumi-yaml/issues/401 shows `gcp:project` from
    both merged), where a stack file's check cannot see it: the platform keeps all config in the checked stack
    files, so any is refused."""
    try:
        document: object = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    if isinstance(document, dict) and "config" in document:
        return [f"{project_file.name} config: project-level config applies to every stack, unchecked by its stack "
                "file; expected no `config:` in the project file (each key in the stack files, where it is checked)"]
    return []
