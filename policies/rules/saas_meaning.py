"""Vercel, Grafana and containers judged by what they do (issue #22 item 15).

PLAT-FE-001: a Vercel project keeps Git fork protection on (a fork's pull request deploys with the
project's variables only once a team member authorizes it), protects its preview deployments
(`vercelAuthentication.deploymentType` one of the protecting values, or password protection), and has no
automation bypass secret. pulumiverse_vercel/project.py: `git_fork_protection` ("Defaults to true"),
`vercel_authentication.deployment_type` (standard_protection_new, standard_protection, all_deployments,
only_preview_deployments; `none` turns it off), `protection_bypass_for_automation`.

PLAT-FE-002: a sensitive variable, or one whose name says credential, never targets preview or
development: a preview builds a pull request's code, which reads every variable of its target
(vercel.com/docs/environment-variables#preview-environment-variables).

PLAT-OBS-001: Grafana contact points send over HTTPS only; alert rules are not paused (`isPaused`), and
a paging rule never maps no data to OK (`noDataState: OK`: the page stays silent exactly when the
metric stops) unless its annotation `no_data_paged_by` names a paging rule of the same group whose no data
is Alerting (the absence alert the program pairs it with). pulumiverse_grafana/alerting/rule_group.py.

PLAT-CTR-001: a container is not privileged, adds no capability beyond the harmless, shares neither
the host's PID nor IPC namespace, and mounts no runtime socket (docker.sock, containerd, CRI-O, podman):
each hands root on the host to whoever runs code in it (docs.docker.com/engine/security/#docker-daemon-
attack-surface).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import Finding, NotApplicable, Resource, Verdict, as_list, as_map, is_unknown, strings

VERCEL_PROJECT = "vercel:index/project:Project"
VERCEL_ENV_TYPES = ("vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable",
                    "vercel:index/projectEnvironmentVariables:ProjectEnvironmentVariables",
                    "vercel:index/sharedEnvironmentVariable:SharedEnvironmentVariable")
PROTECTING = frozenset({"standard_protection_new", "standard_protection", "all_deployments",
                        "only_preview_deployments"})
PREVIEW_KEYS = frozenset({"NEXT_PUBLIC_API_URL", "CATALOG_REVALIDATE_SECONDS"})
"""The non-secret variables components/frontend.py gives preview deployments; any other reaches production only."""
_CREDENTIAL = re.compile(r"(?i)(secret|token|password|passwd|api[_-]?key|private|credential|auth|dsn|database_url)")


def check_vercel_project(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-FE-001."""
    if resource.type != VERCEL_PROJECT:
        return NotApplicable("not a Vercel project")
    name = resource.get("name")
    out: list[str] = []
    if resource.get("gitForkProtection") is not True:
        out.append(f"Vercel project {name!r} has gitForkProtection {resource.get('gitForkProtection')!r}: a fork's "
                   "pull "
                   "request deploys with the project's variables unreviewed; expected true, set explicitly")
    deployment = as_map(resource.get("vercelAuthentication")).get("deploymentType")
    password = as_map(resource.get("passwordProtection")).get("deploymentType")
    if deployment not in PROTECTING and password not in PROTECTING:
        out.append(f"Vercel project {name!r} leaves preview deployments open (vercelAuthentication "
                   f"{deployment!r}); expected one of {', '.join(sorted(PROTECTING))}")
    if resource.get("protectionBypassForAutomation") is True:
        out.append(f"Vercel project {name!r} creates an automation bypass secret for deployment protection; "
                   "expected none")
    # pulumiverse_vercel/project.py `options_allowlist`: "Disable Deployment Protection for CORS preflight `OPTIONS`
    # requests for a list of paths".
    # project.py `public_source`: "By default, visitors to the `/_logs` and `/_src` paths of your Production and
    # Preview Deployments must log in with Vercel (requires being a member of your team) to see the Source, Logs and
    # Deployment Status of your project. Setting `public_source` to `true` disables this behaviour".
    if resource.get("publicSource") not in (None, False):
        out.append(f"Vercel project {name!r} publishes its source and build logs (publicSource "
                   f"{resource.get('publicSource')!r}); expected publicSource absent or false")
    if resource.get("optionsAllowlist") is not None:
        out.append(f"Vercel project {name!r} lets OPTIONS requests past deployment protection "
                   f"({resource.get('optionsAllowlist')!r}); expected no optionsAllowlist")
    return out


VERCEL_DOMAIN = "vercel:index/projectDomain:ProjectDomain"


def check_vercel_stack(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-FE-001 over the stack: each project as check_vercel_project judges it, and each project domain serves
    the production deployment: no `git_branch` (pulumiverse_vercel/project_domain.py: "Git branch to link to the
    project domain. Deployments from this git branch will be assigned the domain name": a branch's preview code
    on a tenant host, with production's variables reachable from it) and a `redirect` only to another domain of
    this stack's storefront (project_domain.py `redirect`: "The domain name that serves as a target destination
    for redirects")."""
    out: list[tuple[str, Finding]] = []
    for r in resources:
        verdict = check_vercel_project(r, config)
        if not isinstance(verdict, NotApplicable):
            out += [(r.urn, f) for f in verdict]
    domains = [r for r in resources if r.type == VERCEL_DOMAIN]
    hosts = {str(r.get("domain")).lower().rstrip(".") for r in domains if isinstance(r.get("domain"), str)}
    for r in domains:
        if r.get("gitBranch") is not None:
            out.append((r.urn, f"project domain {r.get('domain')!r} serves git branch {r.get('gitBranch')!r}, a "
                               "preview of code nobody reviewed on a production host; expected the production "
                               "deployment (no gitBranch)"))
        redirect = r.get("redirect")
        if redirect is not None and (not isinstance(redirect, str) or redirect.lower().rstrip(".") not in hosts
                                     or redirect.lower().rstrip(".") == str(r.get("domain")).lower().rstrip(".")):
            out.append((r.urn, f"project domain {r.get('domain')!r} redirects to {redirect!r}, which is no other "
                               f"domain of this stack's storefront; expected one of {sorted(hosts)}"))
    return out


def _variables(resource: Resource) -> list[Mapping[str, Any]]:
    if resource.type.endswith("projectEnvironmentVariables:ProjectEnvironmentVariables"):
        return [as_map(v) for v in as_list(resource.get("variables"))]
    return [resource.props]


def check_vercel_env(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-FE-002."""
    if resource.type == VERCEL_PROJECT:
        # pulumiverse_vercel/project.py `environments`: variables inline on the project, each with its `target`s
        # ("Deprecated: use ProjectEnvironmentVariables"); none are declared so, so none escape this rule.
        inline = resource.get("environments")
        if is_unknown(inline) or as_list(inline):
            return [f"Vercel project {resource.get('name')!r} declares variables inline (environments), whose targets "
                    "may include preview; expected none, each variable a ProjectEnvironmentVariable judged here"]
        return []
    if resource.type not in VERCEL_ENV_TYPES:
        return NotApplicable("not a Vercel variable")
    out: list[str] = []
    for variable in _variables(resource):
        key, targets = variable.get("key"), as_list(variable.get("targets", variable.get("target")))
        credential = variable.get("sensitive") is True or (isinstance(key, str) and bool(_CREDENTIAL.search(key)))
        exposed = [t for t in targets if t != "production"] or ([] if targets else ["every environment"])
        if variable.get("customEnvironmentIds"):
            exposed.append("custom environments")
        if not credential and exposed and key not in PREVIEW_KEYS:
            out.append(f"{key} is no variable the storefront declares for previews ({', '.join(sorted(PREVIEW_KEYS))}) "
                       f"and reaches {exposed}; expected target production only")
        if credential and exposed:
            out.append(f"{key} holds a credential and reaches {exposed}, where a pull request's code reads it; "
                       "expected target production only")
    return out


CONTACT_POINT = "grafana:alerting/contactPoint:ContactPoint"
RULE_GROUP = "grafana:alerting/ruleGroup:RuleGroup"


def _skips_verify(value: Any) -> bool:
    if isinstance(value, Mapping):
        for k, v in as_map(value).items():
            off = str(v).strip().lower() in ("false", "0", "none", "")
            if re.sub(r"[_-]", "", str(k)).lower() == "insecureskipverify" and not off:
                return True
            if _skips_verify(v):
                return True
    return any(_skips_verify(v) for v in as_list(value))


def check_grafana(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-OBS-001."""
    if resource.type == CONTACT_POINT:
        plain = sorted({s for s in strings(resource.props) if re.match(r"(?i)^\s*http://", s)})
        out = [f"contact point {resource.get('name')!r} sends to {u!r} over plain HTTP; expected https://"
               for u in plain]
        # pulumiverse_grafana alerting/_inputs.py: webhooks[].tls_config (a map, Grafana's `insecureSkipVerify`)
        # and http_config.oauth2.tls_config.insecure_skip_verify ("Do not verify the server's certificate").
        if _skips_verify(resource.props):
            out.append(f"contact point {resource.get('name')!r} turns TLS verification off (insecureSkipVerify), so "
                       "anyone on the path reads its token; expected the certificate checked")
        return out
    if resource.type == RULE_GROUP:
        out: list[str] = []
        if is_unknown(resource.get("rules")):
            return ["alert rules not known until apply; expected them known"]
        rules = [as_map(x) for x in as_list(resource.get("rules"))]
        absence_pagers = {x.get("name") for x in rules if x.get("noDataState") == "Alerting"
                          and as_map(x.get("labels")).get("severity") == "page" and not x.get("isPaused")}
        for rule in rules:
            title = rule.get("name")
            if rule.get("isPaused") is not False and rule.get("isPaused") is not None:
                out.append(f"alert rule {title!r} is paused; expected every rule evaluated")
            paging = as_map(rule.get("labels")).get("severity") == "page"
            covered = as_map(rule.get("annotations")).get("no_data_paged_by") in absence_pagers
            if rule.get("noDataState") == "OK" and paging and not covered:
                out.append(f"paging rule {title!r} maps no data to OK, so it stays silent when its metric stops; "
                           "expected NoData or Alerting, or annotation no_data_paged_by naming a paging rule of "
                           "this group whose no data is Alerting")
            elif paging and rule.get("noDataState") not in (*PAGING_NO_DATA, "OK"):
                out.append(f"paging rule {title!r} maps no data to {rule.get('noDataState')!r}; expected NoData or "
                           "Alerting (KeepLast never pages a metric that stops before it fires)")
            if paging and rule.get("execErrState") not in PAGING_EXEC_ERROR:
                out.append(f"paging rule {title!r} maps a query error to {rule.get('execErrState')!r}, so it stays "
                           "silent when its query fails; expected Error or Alerting")
        return out
    if resource.type == NOTIFICATION_POLICY:
        if is_unknown(resource.get("policies")):
            return ["notification routes not known until apply; expected them known"]
        return [f"the severity=page route {route} is muted or active only at times ({timings}); expected pages "
                "delivered at any hour" for route, timings in _timed_page_routes(resource.get("policies"), False)]
    return NotApplicable("not a Grafana contact point, rule group or notification policy")


NOTIFICATION_POLICY = "grafana:alerting/notificationPolicy:NotificationPolicy"
PAGING_NO_DATA = (None, "NoData", "Alerting")
PAGING_EXEC_ERROR = (None, "Error", "Alerting")
"""pulumiverse_grafana/alerting/_inputs.py RuleGroupRule: no_data_state NoData, Alerting, OK, KeepLast (default
NoData); exec_err_state OK, Error, Alerting, KeepLast (default Alerting). NoData and Error fire DatasourceNoData /
DatasourceError alerts with the rule's labels, so they page (grafana.com/docs/grafana/latest/alerting/
fundamentals/alert-rule-evaluation/state-and-health/)."""


def _timed_page_routes(policies: Any, under_page: bool) -> list[tuple[str, list[Any]]]:
    """Routes (or routes under one) matching severity=page that carry mute or active timings
    (pulumiverse_grafana/alerting/_inputs.py NotificationPolicyPolicy mute_timings, active_timings)."""
    out: list[tuple[str, list[Any]]] = []
    for policy in map(as_map, as_list(policies)):
        page = under_page or any(as_map(m).get("label") == "severity" and as_map(m).get("value") == "page"
                                 and as_map(m).get("match") in ("=", "=~") for m in as_list(policy.get("matchers")))
        timings = as_list(policy.get("muteTimings")) + as_list(policy.get("activeTimings"))
        if page and (timings or is_unknown(policy.get("muteTimings")) or is_unknown(policy.get("activeTimings"))):
            out.append((repr(policy.get("contactPoint")), timings or ["unknown"]))
        out += _timed_page_routes(policy.get("policies"), page)
    return out


DOCKER_CONTAINER = "docker:index/container:Container"
_SOCKET = re.compile(r"(?i)(docker\.sock|containerd\.sock|crio\.sock|podman\.sock|/var/run/docker\b|/run/docker\b|"
                     r"/run/containerd\b)")
# Parents of the runtime's socket hand the socket over too: a bind of / or /run reaches /run/docker.sock.
RUNTIME_PARENTS = frozenset({"/", "/var", "/var/run", "/run", "/run/containerd", "/var/run/containerd", "/run/docker",
                             "/var/run/docker", "/var/lib/docker", "/var/lib/containerd"})


def _normal(path: str) -> str:
    """A host path as the kernel resolves it lexically (dot segments, repeated and trailing slashes)."""
    return posixpath.normpath("/" + path.strip()).replace("//", "/")


HARMLESS_CAPS = frozenset({"NET_BIND_SERVICE", "CHOWN", "SETUID", "SETGID", "DAC_OVERRIDE", "FOWNER", "KILL"})


DOCKER_VOLUME = "docker:index/volume:Volume"


def check_containers(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-CTR-001 over the stack: each container as check_container judges it, each named volume as a plain
    local volume (pulumi_docker/volume.py `driver`, `driver_opts`: `type=none, o=bind, device=/var/run` is a bind
    mount of the host's /var/run, docs.docker.com/reference/cli/docker/volume/create/ "--opt type=none --opt
    o=bind --opt device=..."), and a container's `volumeName` names a volume of this stack (Docker uses a volume of
    that name already on the host, whatever it binds)."""
    volumes = {str(r.get("name")): r for r in resources if r.type == DOCKER_VOLUME}
    out: list[tuple[str, Finding]] = []
    for r in resources:
        if r.type == DOCKER_VOLUME:
            if r.get("driver") not in (None, "local") or as_map(r.get("driverOpts")) or is_unknown(r.get("driverOpts")):
                out.append((r.urn, f"volume {r.get('name')!r} uses driver {r.get('driver')!r} with options "
                                   f"{r.get('driverOpts')!r} (a bind or remote mount of what the host holds); "
                                   "expected a plain local volume"))
            continue
        verdict = check_container(r, config)
        if isinstance(verdict, NotApplicable):
            continue
        out += [(r.urn, f) for f in verdict]
        for mount in map(as_map, as_list(r.get("volumes"))):
            named = mount.get("volumeName")
            if named is not None and str(named) not in volumes:
                out.append((r.urn, f"container {r.get('name')!r} mounts volume {named!r}, which this stack does not "
                                   "declare (whatever the host has under that name); expected one of its own"))
    return out


def check_container(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-CTR-001."""
    if resource.type != DOCKER_CONTAINER:
        return NotApplicable("not a container")
    name = resource.get("name")
    out: list[str] = []
    if resource.get("privileged") is not None and resource.get("privileged") is not False:
        out.append(f"container {name!r} is privileged (root on the host); expected not")
    adds = {str(c).upper().removeprefix("CAP_") for c in as_list(as_map(resource.get("capabilities")).get("adds"))}
    if adds - HARMLESS_CAPS:
        out.append(f"container {name!r} adds capabilities {sorted(adds - HARMLESS_CAPS)}; expected none beyond "
                   f"{', '.join(sorted(HARMLESS_CAPS))}")
    for mode in ("pidMode", "ipcMode", "usernsMode", "cgroupnsMode"):
        if resource.get(mode) == "host":
            out.append(f"container {name!r} shares the host's {mode.removesuffix('Mode')} namespace; expected its own")
    sources = [as_map(v).get("hostPath") for v in as_list(resource.get("volumes"))]
    sources += [as_map(m).get("source") for m in as_list(resource.get("mounts")) if as_map(m).get("type") == "bind"]
    paths = [_normal(s) for s in sources if isinstance(s, str)]
    sockets = sorted({s for s in paths if _SOCKET.search(s) or s in RUNTIME_PARENTS})
    if sockets:
        out.append(f"container {name!r} mounts the container runtime's socket {sockets} (read-only does not help: the "
                   "API is writable over it), root on the host to whoever runs code in it; expected none")
    if resource.get("networkMode") == "host":
        out.append(f"container {name!r} shares the host's network namespace (networkMode host): it reaches every "
                   "host-local listener, the runtime's and the metadata server's included; expected its own network")
    unconfined = [o for o in as_list(resource.get("securityOpts"))
                  if isinstance(o, str) and re.match(r"(?i)^\s*(seccomp|apparmor|label)\s*[=:]\s*(unconfined|disable)",
                                                     o)]
    if unconfined:
        out.append(f"container {name!r} runs without its confinement {unconfined} (docs.docker.com/engine/security/"
                   "seccomp/, apparmor/); expected Docker's default profiles")
    if as_list(resource.get("devices")):
        out.append(f"container {name!r} maps host devices; expected none")
    return out


# PLAT-DATA-009: a literal credential in a container's command line is readable by whoever may view the
# service (Cloud Run's revision, `docker inspect`, Railway's settings) and by every process on the host (ps).
_SECRET_FLAG = re.compile(r"(?i)^--?[a-z0-9_-]*(password|passwd|secret|token|api-?key|requirepass|auth)[a-z0-9_-]*$")


def literal_secret_args(argv: list[str]) -> list[str]:
    from policies.rules.gcp_network import metadata_secrets

    out: list[str] = []
    for i, word in enumerate(argv):
        flag, _, value = word.partition("=")
        if not value and i + 1 < len(argv) and _SECRET_FLAG.match(flag):
            value = argv[i + 1]
        if _SECRET_FLAG.match(flag) and value and not value.startswith(("$", "/")) and "${" not in value:
            out.append(f"{flag} is given a literal value")
    out += [m.replace("metadata 'args'", "the command") for m in metadata_secrets({"args": " ".join(argv)})]
    return out


def check_command_secrets(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-DATA-009."""
    from policies.rule import CONTAINER_TYPES, command_argv

    if resource.type not in CONTAINER_TYPES:
        return NotApplicable("not a container service")
    argv = command_argv(resource)
    if argv is None:
        return [f"the command of {resource.get('name')!r} cannot be read; expected one the pack can judge"]
    return [f"{resource.get('name')!r}: {m}; expected credentials from the environment (a secret reference)"
            for m in literal_secret_args(argv)]
