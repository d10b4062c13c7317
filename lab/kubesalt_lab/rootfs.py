"""The Debian bookworm rootfs every lab host boots from, built once with debootstrap and
cached outside the repo. Containers share it read-only (--volatile=overlay)."""

import hashlib
import re
import shutil
import subprocess
import time
from pathlib import Path

from kubesalt_lab.config import LabError

SUITE = "bookworm"
PACKAGES = (
    "systemd",
    "dbus",
    "systemd-sysv",
    "python3",
    "iproute2",
    "etcd-server",
    "etcd-client",
    "containerd",
    "bird2",
    "nginx",
    # The node-local apiserver proxy (kubesalt's default source for it is this package).
    "haproxy",
    # What kube-proxy's and felix's dataplanes call (kubesalt's states ask for them; the
    # lab's hosts have no way out to a mirror, so they are in the rootfs already).
    "nftables",
    "iptables",
    "ipset",
    "conntrack",
    "procps",
    # Apache's ab: bench/ingress.py's load generator, run on the router host.
    "apache2-utils",
)
# Debian enables these at install; kubesalt's states decide when they run, not the package.
PACKAGE_UNITS_DISABLED = (
    "etcd.service",
    "containerd.service",
    "nginx.service",
    "bird.service",
    "haproxy.service",
)
MINION_UNIT_NAME = "kubesalt-lab-minion.service"
# /opt/kubesalt-lab is bound from the lab's run directory at boot: it holds a launcher for
# the salt-minion of the project's venv.
MINION_UNIT = """[Unit]
Description=salt-minion of the kubesalt lab
After=network.target
ConditionPathExists=/opt/kubesalt-lab/bin/salt-minion

[Service]
ExecStart=/opt/kubesalt-lab/bin/salt-minion -c /etc/salt
Restart=on-failure
KillMode=process
# salt-minion can take long to exit on SIGTERM; the lab's hosts are volatile anyway.
TimeoutStopSec=5

[Install]
WantedBy=multi-user.target
"""
# debootstrap writes no /etc/hosts; an installed Debian has one, and programs that bind
# "localhost" need it (without it the name goes to a resolver the hosts cannot reach).
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
RECIPE = "\n".join([SUITE, *PACKAGES, *PACKAGE_UNITS_DISABLED, MINION_UNIT, HOSTS, "v1"])
STAMP = ".kubesalt-lab-recipe"


def recipe_id():
    return hashlib.sha256(RECIPE.encode()).hexdigest()[:16]


def is_current(rootfs):
    stamp = Path(rootfs) / STAMP
    return stamp.exists() and stamp.read_text().strip() == recipe_id()


def debian_mirror(apt_dir=Path("/etc/apt")):
    """The host's own Debian mirror for main (deb822 .sources or sources.list)."""
    candidates = []
    for path in sorted(Path(apt_dir).glob("sources.list.d/*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1)
                for line in stanza.splitlines()
                if ":" in line and not line.startswith("#")
            )
            suites = fields.get("Suites", "").split()
            if SUITE in suites and "main" in fields.get("Components", "").split():
                candidates += fields.get("URIs", "").split()
    legacy = Path(apt_dir) / "sources.list"
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            match = re.match(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s+.*\bmain\b", line)
            if match:
                candidates.append(match.group(1))
    for uri in candidates:
        if "security" not in uri:
            return uri
    raise LabError(f"no Debian {SUITE} main mirror in the host's apt sources ({apt_dir})")


def ensure(rootfs, progress):
    """Build the rootfs unless a current one is cached. Returns True when it built one."""
    rootfs = Path(rootfs)
    if is_current(rootfs):
        progress(f"rootfs: cached at {rootfs}")
        return False
    staging = rootfs.with_name(rootfs.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    progress(f"rootfs: debootstrap {SUITE} into {staging} (a few minutes, once)")
    debootstrap(staging, mirror, progress, PACKAGES, "rootfs")
    _finalize(staging)
    old = rootfs.with_name(rootfs.name + ".old")
    if rootfs.exists():
        rootfs.rename(old)
    staging.rename(rootfs)
    shutil.rmtree(old, ignore_errors=True)
    progress(f"rootfs: ready at {rootfs}")
    return True


def debootstrap(target, mirror, progress, packages, label):
    """``debootstrap --variant=minbase`` of SUITE with ``packages`` into ``target``, its
    log beside it, a progress line (``label: ...``) every 10 s."""
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        SUITE,
        str(target),
        mirror,
    ]
    log_path = target.with_name(target.name + ".log")
    start = last_report = time.monotonic()
    with open(log_path, "w") as log:
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        except FileNotFoundError as err:
            raise LabError("debootstrap is not installed (run `make setup`)") from err
        step = ""
        for line in proc.stdout:
            log.write(line)
            if line.startswith("I: "):
                step = line[3:].strip()
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                progress(f"{label}: {int(last_report - start)}s, {step}")
        proc.wait()
    if proc.returncode != 0:
        raise LabError(f"debootstrap failed ({proc.returncode}); see {log_path}")


def _finalize(root):
    # Each container gets its own identity at boot.
    (root / "etc" / "hostname").unlink(missing_ok=True)
    (root / "etc" / "hosts").write_text(HOSTS)
    (root / "etc" / "machine-id").write_text("")
    dbus_id = root / "var" / "lib" / "dbus" / "machine-id"
    dbus_id.unlink(missing_ok=True)
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    subprocess.run(
        ["systemctl", f"--root={root}", "disable", "--quiet", *PACKAGE_UNITS_DISABLED],
        check=True,
        capture_output=True,
    )
    unit_dir = root / "etc" / "systemd" / "system"
    (unit_dir / MINION_UNIT_NAME).write_text(MINION_UNIT)
    wants = unit_dir / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / MINION_UNIT_NAME).unlink(missing_ok=True)
    (wants / MINION_UNIT_NAME).symlink_to(f"/etc/systemd/system/{MINION_UNIT_NAME}")
    for mount_point in ("opt/kubesalt-lab", "etc/salt"):
        (root / mount_point).mkdir(parents=True, exist_ok=True)
    (root / STAMP).write_text(recipe_id() + "\n")
