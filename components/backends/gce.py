"""The gce backend: one container on a Compute Engine VM with a persistent disk, private only.

For PocketBase beside an engine on Cloud Run (prod): Cloud Run has no disk, and a database across the
internet (Railway, another continent) puts every call outside the private network and far from the
engine (M1, B4). Here the VM sits in the engine's region, in the VPC the engine reaches over Direct
VPC egress, with no external address: the only way in is the firewall rule admitting the engine's
egress subnet on the service's port, so PocketBase's admin UI (`/_/`) is never on the internet.

- The VM runs Container-Optimized OS. cloud-init (`user-data`, https://cloud.google.com/container-optimized-os/docs/how-to/create-configure-instance#using_cloud-init)
  formats and mounts the persistent disk at first boot, reads the container's secrets from Secret
  Manager with the VM's own service account (the metadata server's token), and runs the image with
  systemd; Google's container startup agent (`gce-container-declaration`) is deprecated.
- The VM's service account may read exactly its secrets and pull from the stack's registry
  repository, and write logs and metrics: no project role beyond those two writers.
- The disk and the boot disk are encrypted at rest by Compute Engine (AES-256, Google-managed keys:
  https://cloud.google.com/docs/security/encryption/default-encryption); snapshots are the DR
  layer's business.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as time

from components.backends.cloudrun import IAM_PROPAGATION
from components.backends.service import ContainerSpec, Endpoint

MOUNT = "/mnt/disks/data"
DEVICE = "data"
# E2 custom machine types: an even number of vCPUs from 2, 0.5 to 8 GB per vCPU in 256 MB steps
# (https://cloud.google.com/compute/docs/instances/creating-instance-with-custom-machine-type#e2_custom_machine_types).
IMAGE = "cos-cloud/cos-stable"
# Regions without a zone `a` (cloud.google.com/compute/docs/regions-zones).
FIRST_ZONE = {"us-east1": "b", "europe-west1": "b"}


@dataclass(frozen=True)
class GceTarget:
    project: str
    region: str
    environment: str
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]
    """The VMs' own subnetwork, the one Cloud NAT covers: never the engine's Direct VPC egress subnetwork."""
    client_ranges: Sequence[str]
    """CIDRs that may reach the service's port: the engine's Direct VPC egress subnet."""
    registry_server: str | None = None
    """`<region>-docker.pkg.dev`: the VM pulls the image from there with its own account."""
    registry_repository: str | None = None
    """`<project>/<repository>` on that server; the VM's account may read this repository only."""
    deletion_protection: bool = False
    disk_gb: int = 20
    name_suffix: str = ""
    """Added to every name of the VM's resources: a second VM of the same service (`-standby`)."""
    running: bool = True
    """False: the VM is declared stopped (`desiredStatus: TERMINATED`), as a standby that serves nothing."""
    data_disk: bool = True
    """False: no data disk. A disk declared again later is a new, empty one (PocketBase restores its replica on
    it); one deleted is snapshotted first (`createSnapshotBeforeDestroy`)."""
    address: str | None = None
    """The VM's internal address; left out, one the subnetwork picks."""
    depends_on: Sequence[pulumi.Input[pulumi.Resource]] = ()
    """The VM is created or changed only after these (the standby starts after the edge stopped sending to the
    primary)."""
    grants: Sequence[pulumi.Resource] = ()
    """IAM grants made elsewhere that the VM uses at its first boot (the DR buckets' writer grants, used through the
    `pocketbase-dr` account's HMAC key): its IAM propagation wait covers them as it covers its own."""

    @property
    def zone(self) -> str:
        return f"{self.region}-{FIRST_ZONE.get(self.region, 'a')}"


def vm_address(cidr: str) -> str:
    """A VM's fixed internal address in its subnetwork: the tenth, clear of the four Google reserves in every
    subnet (network, gateway, second-to-last, broadcast: cloud.google.com/vpc/docs/subnets, "Unusable addresses in
    IPv4 subnet ranges"). Fixed, so the engine's URL is known before the VM, and a plan shows where it really is."""
    return str(ipaddress.ip_network(cidr)[10])


def machine_type(cpu_millis: int, memory_mib: int) -> str:
    cpus = max(2, -(-cpu_millis // 1000))
    cpus += cpus % 2
    memory = max(memory_mib, cpus * 512)
    memory = -(-memory // 256) * 256
    return f"e2-custom-{cpus}-{memory}"


def secret_fetch_line(project: str, secret_id: str, version: str, variable: str) -> str:
    """A line of the secrets script (`SECRETS_SCRIPT`): read one secret version into `VARIABLE`, or fail the unit.
    Secret Manager answers `{"name": ..., "payload": {"data": "<base64>", ...}}`
    (https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access)."""
    url = f"https://secretmanager.googleapis.com/v1/projects/{project}/secrets/{secret_id}/versions/{version}:access"
    return f"fetch {shlex.quote(variable)} {shlex.quote(url)}"


SECRETS_SCRIPT = """\
set -euo pipefail
umask 077
# Run as ExecStartPre= of the service: it writes every secret to tmpfs, or fails and writes nothing, so the
# container never starts with an empty secret. A read is denied (403) until the VM account's grant has
# propagated, "typically 2 minutes, potentially 7 minutes or longer"
# (cloud.google.com/iam/docs/access-change-propagation): each read is retried with a doubling wait (logged to the
# journal), a bounded number of times; past that the unit fails and systemd starts it again (Restart=always).
# `printf "%s" "$(curl ...)"` would not do: a command substitution's status is lost in printf's arguments, so a
# 403 wrote an empty value and exited 0.
attempts="${SECRET_RETRY_ATTEMPTS:-10}"
first_wait="${SECRET_RETRY_SECONDS:-5}"
new=/run/service.env.new
: > "$new"

attempt() {  # attempt WHAT COMMAND...: COMMAND's output once it succeeds with some; fails after $attempts tries
    local what=$1 wait=$first_wait n out
    shift
    for ((n = 1; n <= attempts; n++)); do
        if out="$("$@")" && [ -n "$out" ]; then
            printf '%s' "$out"
            return 0
        fi
        ((n < attempts)) || break
        echo "$what: attempt $n of $attempts failed; next in ${wait}s" >&2
        sleep "$wait"
        wait=$((wait * 2 > 60 ? 60 : wait * 2))
    done
    echo "$what: gave up after $attempts attempts" >&2
    return 1
}

read_token() {  # the VM account's access token, from the metadata server
    curl -sSf -m 20 -H 'Metadata-Flavor: Google' \\
        http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token \\
        | sed -n 's/.*"access_token": *"\\([^"]*\\)".*/\\1/p'
}

read_secret() {  # read_secret URL: the version's value, decoded; fails on an HTTP error or an empty payload
    # The token is asked for at every attempt: the metadata server hands out a cached token until about
    # 5 minutes before it expires (cloud.google.com/compute/docs/access/authenticate-workloads), and reads
    # retried while a grant propagates (minutes) would otherwise keep sending an expired one.
    local token body data
    token="$(read_token)" && [ -n "$token" ] || { echo "no access token from the metadata server" >&2; return 1; }
    body="$(curl -sSf -m 20 -H "Authorization: Bearer $token" "$1")" || return 1
    data="$(printf '%s\\n' "$body" | sed -n 's/.*"data": *"\\([^"]*\\)".*/\\1/p')"
    [ -n "$data" ] || { echo "no payload in the answer for $1" >&2; return 1; }
    printf '%s' "$data" | base64 -d
}

fetch() {  # fetch VARIABLE URL: VARIABLE=<value> into the new env file, or fail the unit
    local value
    value="$(attempt "$1" read_secret "$2")" || exit 1
    printf '%s=%s\\n' "$1" "$value" >> "$new"
}

"""
"""The head of `/etc/<service>-secrets.sh`; `secret_fetch_line`s follow, then the env file is moved in place.
`SECRET_RETRY_SECONDS`/`SECRET_RETRY_ATTEMPTS` let a test run it here without waiting."""


CONFIG_WATCH = """\
set -u
# A `pulumi up` that changes the image, a setting or a secret's version changes only this VM's metadata;
# Container-Optimized OS applies cloud-init when an instance is created or restarted
# (cloud.google.com/container-optimized-os/docs/concepts/disks-and-filesystem, `/etc`). So this waits on
# the metadata server (`?wait_for_change=true`, cloud.google.com/compute/docs/metadata/querying-metadata
# "Waiting for updates") and reboots once the user-data differs: PocketBase stops cleanly (Litestream
# ships its last writes) and starts again as the new user-data says.
url="${METADATA_URL:-http://metadata.google.internal/computeMetadata/v1/instance/attributes/user-data}"
etag() {
    curl -sf -H 'Metadata-Flavor: Google' -o /dev/null -D - "$1" | tr -d '\\r' | sed -n 's/^[Ee][Tt]ag: *//p'
}
seen="$(etag "$url")"
[ -n "$seen" ] || exit 1
while :; do
    now="$(etag "$url?wait_for_change=true&last_etag=$seen&timeout_sec=3600")"
    if [ -n "$now" ] && [ "$now" != "$seen" ]; then
        echo "user-data changed ($seen -> $now): rebooting to apply it"
        exec ${REBOOT:-systemctl reboot}
    fi
    [ -n "$now" ] || sleep 10
done
"""
"""Run by `<service>-config-watch.service` on the VM; `METADATA_URL` and `REBOOT` let a test run it here."""


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.splitlines())


def cloud_init(spec: ContainerSpec, image: str, env: dict[str, str], fetch_lines: Sequence[str],
               registry_server: str | None) -> str:
    """The VM's `user-data`: format and mount the disk, read the secrets into tmpfs, run the image."""
    volume = f"-v {MOUNT}:{spec.volume_path}" if spec.volume_path else ""
    # Never on the boot disk: a VM declared without its data disk (a standby that does not serve) that boots
    # anyway must not start PocketBase, which would restore the replica and write to it beside the primary.
    disk_condition = f"\n    ConditionPathExists=/dev/disk/by-id/google-{DEVICE}" if spec.volume_path else ""
    flags = " ".join(f"-e {shlex.quote(k)}={shlex.quote(v)}" for k, v in sorted(env.items()))
    fetches = "\n".join(f"    {line}" for line in fetch_lines)
    login = f"docker-credential-gcr configure-docker --registries={registry_server}" if registry_server else "true"
    run = (f"/usr/bin/docker run --rm --name {spec.name} -p {spec.port}:{spec.port} {volume} "
           f"--env-file /run/service.env {flags} {image}")
    # The secrets are read by the service's own ExecStartPre=, not by a oneshot unit it requires: a oneshot that
    # failed stays failed and its dependant's start job fails with it, so PocketBase waited for a reboot. Here a
    # failed read fails the service before the container starts ("If any of those commands (not prefixed with
    # "-") fail, the rest are not executed and the unit is considered failed", systemd.service(5), ExecStartPre=),
    # and Restart=always starts it again, the read included, with no start limit (StartLimitIntervalSec=0,
    # systemd.unit(5)): an image pull the registry grant does not allow yet is retried the same way.
    # TimeoutStartSec=infinity: ExecStartPre= runs under the start timeout, by default DefaultTimeoutStartSec=
    # 90 s (systemd-system.conf(5)), while the script's retry schedule sleeps up to 375 s per read (10 attempts,
    # the wait doubling from 5 s to at most 60 s) plus 20 s per curl (-m 20). A timeout would kill it mid-schedule
    # and Restart= would begin the schedule again. The script bounds itself (every curl has -m 20, every read at
    # most 10 attempts), so it always ends on its own, at worst after (1 + secrets) x 575 s; and the other
    # ExecStartPre= only writes docker's config. A fixed timeout could only cut a retry that may still succeed.
    return f"""#cloud-config
write_files:
- path: /etc/systemd/system/{spec.name}.service
  permissions: "0644"
  content: |
    [Unit]
    Description={spec.name}
    Wants=network-online.target
    After=network-online.target
    StartLimitIntervalSec=0{disk_condition}
    [Service]
    TimeoutStartSec=infinity
    Environment=HOME=/home/{spec.name}
    ExecStartPre=/bin/bash /etc/{spec.name}-secrets.sh
    ExecStartPre=/usr/bin/{login}
    ExecStart={run}
    ExecStop=/usr/bin/docker stop {spec.name}
    Restart=always
    RestartSec=10
- path: /etc/{spec.name}-secrets.sh
  permissions: "0700"
  content: |
{_indent(SECRETS_SCRIPT, 4)}
{fetches}
    mv -f "$new" /run/service.env
- path: /etc/systemd/system/{spec.name}-config-watch.service
  permissions: "0644"
  content: |
    [Unit]
    Description=reboot when this VM's user-data changes: cloud-init applies it at boot only
    Wants=network-online.target
    After=network-online.target
    [Service]
    ExecStart=/bin/bash /etc/config-watch.sh
    Restart=always
    RestartSec=10
- path: /etc/config-watch.sh
  permissions: "0700"
  content: |
{_indent(CONFIG_WATCH, 4)}
runcmd:
- mkdir -p {MOUNT}
- blkid /dev/disk/by-id/google-{DEVICE} || mkfs.ext4 -m 0 -E lazy_itable_init=0,discard /dev/disk/by-id/google-{DEVICE}
- mount -o discard,defaults /dev/disk/by-id/google-{DEVICE} {MOUNT}
- systemctl daemon-reload
- systemctl start {spec.name}-config-watch.service
- systemctl start --no-block {spec.name}.service
"""


def deploy(name: str, spec: ContainerSpec, target: GceTarget, parent: pulumi.Resource) -> Endpoint:
    child = pulumi.ResourceOptions(parent=parent)
    project, env = target.project, target.environment + target.name_suffix
    account = gcp.serviceaccount.Account(
        f"{name}-vm-sa", project=project, account_id=f"{spec.name}-{env}-vm"[:30],
        display_name=f"{spec.name} ({env}) VM", opts=child)
    for role in ("roles/logging.logWriter", "roles/monitoring.metricWriter"):
        gcp.projects.IAMMember(f"{name}-vm-{role.split('/')[1].split('.')[0]}-writer", project=project, role=role,
                               member=account.member, opts=child)
    grants: list[pulumi.Resource] = []
    if target.registry_repository is not None and target.registry_server is not None:
        repo_project, repository = target.registry_repository.split("/", 1)
        grants.append(gcp.artifactregistry.RepositoryIamMember(
            f"{name}-vm-image-reader", project=repo_project, location=target.registry_server.split("-docker.")[0],
            repository=repository, role="roles/artifactregistry.reader", member=account.member, opts=child))

    fetches: list[pulumi.Input[str]] = []
    for key, value in sorted(spec.secret_env.items()):
        slug = key.lower().replace("_", "-")
        secret = gcp.secretmanager.Secret(f"{name}-{slug}", project=project, secret_id=f"{spec.name}-{env}-{slug}",
                                          replication={"auto": {}}, opts=child)
        version = gcp.secretmanager.SecretVersion(f"{name}-{slug}-v", secret=secret.id,
                                                  secret_data=pulumi.Output.secret(value), opts=child)
        grants.append(gcp.secretmanager.SecretIamMember(
            f"{name}-{slug}-reader", project=project, secret_id=secret.secret_id,
            role="roles/secretmanager.secretAccessor", member=account.member, opts=child))
        fetches.append(version.version.apply(
            lambda number, secret_id=f"{spec.name}-{env}-{slug}", variable=key:
            secret_fetch_line(project, secret_id, number, variable)))

    # As the Cloud Run services do (cloudrun.py, IAM_PROPAGATION): the VM reads its secrets and pulls its image at
    # its first boot, so it is created only after its grants, and those it uses through the DR account's HMAC key
    # (`target.grants`), had time to propagate ("typically 2 minutes",
    # cloud.google.com/iam/docs/access-change-propagation). Again only when the account, so every grant, changes;
    # a read still denied after that is retried by the boot script (SECRETS_SCRIPT).
    settled = time.Sleep(f"{name}-vm-iam-propagation", create_duration=IAM_PROPAGATION,
                         triggers={"member": account.member},
                         opts=pulumi.ResourceOptions(parent=parent, depends_on=[*grants, *target.grants]))
    address = gcp.compute.Address(f"{name}-address", project=project, region=target.region,
                                  name=f"{spec.name}-{env}", address_type="INTERNAL", subnetwork=target.subnetwork,
                                  address=target.address, opts=child)
    disks: list[gcp.compute.InstanceAttachedDiskArgsDict] = []
    if target.data_disk:
        disk = gcp.compute.Disk(f"{name}-data", project=project, zone=target.zone, name=f"{spec.name}-{env}-data",
                                type="pd-balanced", size=target.disk_gb, create_snapshot_before_destroy=True,
                                opts=child)
        disks.append({"source": disk.id, "device_name": DEVICE})
    instance = gcp.compute.Instance(
        name, project=project, zone=target.zone, name=f"{spec.name}-{env}",
        machine_type=machine_type(spec.size.peak_cpu_millis, spec.size.peak_memory_mib),
        boot_disk={"initialize_params": {"image": IMAGE, "size": 10}},
        attached_disks=disks,
        # No access_configs: no external address. Outbound to Google's APIs (registry, Secret Manager, the
        # replica's bucket) goes through Private Google Access on the subnetwork, the rest through Cloud NAT.
        network_interfaces=[{"subnetwork": target.subnetwork, "network_ip": address.address}],
        service_account={"email": account.email, "scopes": ["cloud-platform"]},
        shielded_instance_config={"enable_secure_boot": True, "enable_vtpm": True,
                                  "enable_integrity_monitoring": True},
        metadata={"user-data": pulumi.Output.all(pulumi.Output.from_input(spec.image), pulumi.Output.all(**spec.env),
                                                 pulumi.Output.all(*fetches)).apply(
            lambda parts: cloud_init(spec, parts[0], parts[1], parts[2], target.registry_server)),
                  "google-logging-enabled": "true", "enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE"},
        labels={"platform-environment": target.environment, "platform-public": "false"},
        tags=[f"{spec.name}-{env}"],
        allow_stopping_for_update=True,
        desired_status="RUNNING" if target.running else "TERMINATED",
        deletion_protection=target.deletion_protection,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[*grants, settled, *target.depends_on]),
    )
    # Outbound to the internet without an external address: the restore test pushes its metrics to the
    # stack's Grafana Cloud, which Private Google Access does not reach (cloud.google.com/nat/docs/overview:
    # Cloud NAT "lets certain resources without external IP addresses create outbound connections to the
    # internet"; nothing outside can open a connection to the VM through it). Only the VMs' own subnetwork:
    # never the engine's Direct VPC egress one (components/cache.py, VM_SUBNET_RANGE).
    router = gcp.compute.Router(f"{name}-router", project=project, region=target.region, network=target.network,
                                name=f"{spec.name}-{env}-egress", opts=child)
    gcp.compute.RouterNat(
        f"{name}-nat", project=project, region=target.region, router=router.name, name=f"{spec.name}-{env}-egress",
        nat_ip_allocate_option="AUTO_ONLY", source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
        subnetworks=[{"name": target.subnetwork, "source_ip_ranges_to_nats": ["ALL_IP_RANGES"]}],
        log_config={"enable": True, "filter": "ALL"}, opts=child)
    gcp.compute.Firewall(
        f"{name}-clients", project=project, network=target.network, name=f"{spec.name}-{env}-clients",
        direction="INGRESS", source_ranges=list(target.client_ranges), target_tags=[f"{spec.name}-{env}"],
        allows=[{"protocol": "tcp", "ports": [str(spec.port)]}],
        description=f"only the engine's Direct VPC egress reaches {spec.name}", opts=child)
    return Endpoint(private_url=pulumi.Output.concat("http://", address.address, f":{spec.port}"), public_url=None,
                    resources=[instance])
