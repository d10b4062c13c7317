"""Lab hosts: systemd-nspawn containers booting the shared rootfs with --volatile=overlay,
one per node, each in its node's network namespace."""

import contextlib
import os
import subprocess
from pathlib import Path

from kubesalt_lab.config import REPO, LabError
from kubesalt_lab.system import alive, cmdline, read_pid, run, stop_pids, wait_until

CGROUP_PARENT = "kubesalt-lab"


def _cgroup_hierarchies():
    """Mount points of the hierarchies systemd uses: cgroup2 and v1 name=systemd."""
    points = []
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _dev, point, fstype, options = line.split()[:4]
            if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options):
                points.append(Path(point))
    return points


def cgroups(node=None):
    """The lab's cgroup directories (one per node per hierarchy), or their parents."""
    tail = [CGROUP_PARENT, node.id] if node else [CGROUP_PARENT]
    return [Path(point, *tail) for point in _cgroup_hierarchies()]


def _enter_own_cgroup(paths):
    # Without machined, nspawn --keep-unit leaves the container in our own cgroup: two
    # containers would share it and their systemds trip over each other (status=219/CGROUP).
    def enter():
        for path in paths:
            (path / "cgroup.procs").write_text(str(os.getpid()))

    return enter


def remove_cgroups():
    """Remove the lab's (empty) cgroup trees, deepest first."""
    for top in cgroups():
        if not top.exists():
            continue
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def pid_file(lab, node):
    return lab.run_dir / "pids" / f"{node.id}.nspawn"


def nspawn_pid(lab, node):
    """PID of the node's running systemd-nspawn, or None (checks it is really ours)."""
    pid = read_pid(pid_file(lab, node))
    if pid and alive(pid) and f"--machine={node.id}" in cmdline(pid):
        return pid
    return None


def boot(lab, node):
    """Start the container unless it runs already; returns the nspawn PID."""
    pid = nspawn_pid(lab, node)
    if pid:
        return pid
    node_dir = lab.node_dir(node)
    argv = [
        "systemd-nspawn",
        f"--directory={lab.rootfs}",
        "--boot",
        "--register=no",
        "--keep-unit",
        f"--machine={node.id}",
        "--volatile=overlay",
        "--console=passive",
        f"--network-namespace-path=/run/netns/{node.netns}",
        # The repo (with its venv) at the same path, so the venv's scripts resolve.
        f"--bind-ro={REPO}",
        f"--bind-ro={lab.run_dir / 'launch'}:/opt/kubesalt-lab",
        f"--bind={node_dir / 'etc-salt'}:/etc/salt",
        "--capability=CAP_NET_ADMIN",
    ]
    own = cgroups(node)
    for path in own:
        path.mkdir(parents=True, exist_ok=True)
    log = open(node_dir / "nspawn.log", "ab")  # noqa: SIM115 - handed to the child
    with log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_enter_own_cgroup(own),
        )
    pid_file(lab, node).parent.mkdir(parents=True, exist_ok=True)
    pid_file(lab, node).write_text(f"{proc.pid}\n")
    return proc.pid


def leader_pid(nspawn):
    """The container's PID 1 as seen from the host: nspawn's child whose NSpid ends in 1."""
    for task in Path(f"/proc/{nspawn}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except FileNotFoundError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == "1":
                    return int(child)
    return None


def leader(lab, node):
    pid = nspawn_pid(lab, node)
    return leader_pid(pid) if pid else None


def _nsenter(pid, argv, *env):
    """argv run in every namespace of ``pid`` with a clean environment (not the host's)."""
    base_env = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
        "LANG=C.UTF-8",
        *env,
    ]
    return ["nsenter", "-t", str(pid), "-a", "env", "-i", *base_env, *argv]


def inside(lab, node, argv, check=True, timeout=60):
    """Run argv inside the node (all its namespaces) and return the CompletedProcess."""
    pid = leader(lab, node)
    if not pid:
        raise LabError(f"{node.id} is not running (kubesalt-lab up)")
    return run(_nsenter(pid, argv), check=check, timeout=timeout)


def system_state(lab, node):
    """systemd's overall state inside the node ('running', 'degraded', ...) or 'down'."""
    if not leader(lab, node):
        return "down"
    out = inside(lab, node, ["systemctl", "is-system-running"], check=False).stdout.strip()
    return out or "unknown"


def wait_booted(lab, node, timeout=60):
    def settled():
        state = system_state(lab, node)
        return state if state in ("running", "degraded") else None

    return wait_until(settled, timeout, what=f"{node.id} to finish booting")


def shell_argv(lab, node, command):
    term = os.environ.get("TERM", "xterm")
    return _nsenter(leader(lab, node), command or ["/bin/bash", "-l"], f"TERM={term}")


def stop(lab, nodes):
    """Power the containers off together (SIGTERM to nspawn); kill what does not go."""
    nspawns = [nspawn_pid(lab, node) for node in nodes]
    leaders = [leader_pid(pid) for pid in nspawns if pid]
    stop_pids(nspawns, grace=8)
    # Killing a container's PID 1 ends its whole PID namespace; a container whose nspawn
    # had to be killed would otherwise keep running under the host's init.
    stop_pids([pid for pid in leaders if pid and alive(pid)], grace=0)
    for node in nodes:
        pid_file(lab, node).unlink(missing_ok=True)
