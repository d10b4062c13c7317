"""Lab hosts: systemd-nspawn containers, one per node, each in its node's network namespace.

Every node boots an overlay of the shared rootfs with an upper directory of its own, so a
host powered off (``power_off``: every process killed at once, as a pulled plug) boots again
(``power_on``) with its disk as it was. ``kubesalt-lab down`` removes the disks."""

import contextlib
import os
import subprocess
from pathlib import Path

from kubesalt_lab.config import REPO, LabError
from kubesalt_lab.system import alive, cmdline, read_pid, run, stop_pids, wait_until

CGROUP_PARENT = "kubesalt-lab"


def _own_cgroups():
    """``[(controllers, path)]`` of this process, from /proc/self/cgroup (controllers is a
    frozenset, empty for cgroup2, ``{"name=systemd"}`` for systemd's own hierarchy)."""
    found = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        found.append((frozenset(c for c in controllers.split(",") if c), path))
    return found


def _cgroup_hierarchies():
    """``[(mount point, this process's path in it)]`` for every cgroup hierarchy: cgroup2,
    systemd's own, and each v1 controller hierarchy."""
    own = _own_cgroups()
    found = []
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _dev, point, fstype, options = line.split()[:4]
            if fstype == "cgroup2":
                wanted = frozenset()
            elif fstype == "cgroup":
                wanted = None
                opts = set(options.split(","))
                for controllers, _path in own:
                    if controllers and controllers <= opts:
                        wanted = controllers
            else:
                continue
            path = next((p for c, p in own if c == wanted), None)
            if wanted is not None and path is not None:
                found.append((Path(point), path.lstrip("/")))
    return found


def cgroups(node=None):
    """The lab's cgroup directories (one per node per hierarchy, under the cgroup the lab
    itself runs in there), or their parents."""
    tail = [CGROUP_PARENT, node.id] if node else [CGROUP_PARENT]
    return [Path(point, own, *tail) for point, own in _cgroup_hierarchies()]


def _make_cgroup(path):
    """mkdir -p a cgroup; a v1 cpuset cgroup takes its parent's cpus and mems (it is empty,
    and refuses processes, until they are set)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir()
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (directory / name).exists():
                (directory / name).write_text((directory.parent / name).read_text())


def _enter_own_cgroup(paths):
    # Without machined, nspawn --keep-unit leaves the container in our own cgroup: two
    # containers would share it and their systemds trip over each other (status=219/CGROUP).
    # In every v1 controller too: nspawn gives the container a cgroup namespace rooted where
    # it starts, so a runtime inside creates its cgroups under its own host's.
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


def resolv_conf(lab):
    """The nodes' /etc/resolv.conf: no nameserver, so the resolver asks 127.0.0.1, finds
    nothing there and fails at once (the lab addresses its nodes by IP; /etc/hosts names
    localhost)."""
    path = lab.run_dir / "resolv.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# kubesalt lab: no resolver (the lab addresses its nodes by IP)\n"
        "options timeout:1 attempts:1\n"
    )
    return path


def root_dir(lab, node):
    """Where the node's disk is mounted: the shared rootfs under its own upper directory."""
    return lab.node_dir(node) / "root"


def is_mounted(path):
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


def mount_root(lab, node):
    """Mount the node's disk unless it is mounted (its changes stay in ``disk/``)."""
    root = root_dir(lab, node)
    if is_mounted(root):
        return root
    disk = lab.node_dir(node) / "disk"
    for path in (disk / "upper", disk / "work", root):
        path.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={lab.rootfs},upperdir={disk / 'upper'},workdir={disk / 'work'}"
    run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)])
    return root


def is_lab_nspawn(lab, argv):
    """True for a systemd-nspawn command line booting one of the lab's node disks."""
    prefix = f"--directory={lab.run_dir / 'nodes'}/"
    return (
        bool(argv)
        and argv[0].endswith("systemd-nspawn")
        and any(a.startswith(prefix) for a in argv)
    )


def boot(lab, node):
    """Start the container unless it runs already; returns the nspawn PID."""
    pid = nspawn_pid(lab, node)
    if pid:
        return pid
    node_dir = lab.node_dir(node)
    argv = [
        "systemd-nspawn",
        f"--directory={mount_root(lab, node)}",
        "--boot",
        "--register=no",
        "--keep-unit",
        f"--machine={node.id}",
        "--console=passive",
        f"--network-namespace-path=/run/netns/{node.netns}",
        # The repo (with its venv) at the same path, so the venv's scripts resolve.
        f"--bind-ro={REPO}",
        f"--bind-ro={lab.run_dir / 'launch'}:/opt/kubesalt-lab",
        f"--bind={node_dir / 'etc-salt'}:/etc/salt",
        # No resolver from the machine: its nameserver is outside the lab, and a lookup
        # would wait on the router (which drops it) instead of failing at once.
        "--resolv-conf=off",
        f"--bind-ro={resolv_conf(lab)}:/etc/resolv.conf",
    ]
    env = dict(os.environ)
    if runs_containers(node):
        # A node that runs pods: runc needs every capability and no seccomp filter of
        # nspawn's ("unable to join session keyring" otherwise), and containerd's overlay
        # snapshots cannot sit on the container's own overlay root.
        containerd = node_dir / "containerd"
        containerd.mkdir(parents=True, exist_ok=True)
        # The kubelet watches the kernel's log for OOM kills.
        argv += [
            "--capability=all",
            f"--bind={containerd}:/var/lib/containerd",
            "--bind-ro=/dev/kmsg",
        ]
        env["SYSTEMD_SECCOMP"] = "0"
    else:
        argv.append("--capability=CAP_NET_ADMIN")
    own = cgroups(node)
    for path in own:
        _make_cgroup(path)
    log = open(node_dir / "nspawn.log", "ab")  # noqa: SIM115 - handed to the child
    with log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_enter_own_cgroup(own),
            env=env,
        )
    pid_file(lab, node).parent.mkdir(parents=True, exist_ok=True)
    pid_file(lab, node).write_text(f"{proc.pid}\n")
    return proc.pid


def runs_containers(node):
    return "worker" in node.roles


# The kernel settings a kubelet protects (kubesalt writes them to sysctl.d and applies
# them; the kubelet refuses to start when they differ). They are machine-wide, and the
# lab's nodes share this machine's kernel: each node that runs pods gets its own copy of
# these files instead, so no lab node changes the machine.
KUBELET_KERNEL_TUNABLES = (
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
_NODE_TUNABLES = "/run/kubesalt-lab/sysctl"


def prepare_runtime(lab, node):
    """What a node needs from its host, done right after it booted:

    - /proc/sys/net writable: it holds only the node's own network namespace's settings
      (ip_forward, which kubesalt sets on workers and routers), not the machine's;

    and on a node that runs pods:

    - its v1 controller hierarchies writable (nspawn mounts them read-only); its cgroup
      namespace shows only its own subtree, where containerd, runc and the kubelet create
      their cgroups;
    - its own copy of the kubelet's machine-wide kernel tunables (see above).
    """
    script = [
        "set -e",
        "if ! mountpoint -q /proc/sys/net; then",
        "  mount --bind /proc/sys/net /proc/sys/net",
        "  mount -o remount,bind,rw /proc/sys/net",
        "fi",
    ]
    if not runs_containers(node):
        inside(lab, node, ["sh", "-c", "\n".join(script)])
        return
    script += [
        "for c in /sys/fs/cgroup/*/; do",
        '  case "$(stat -fc %T "$c")" in cgroupfs) mount -o remount,bind,rw "$c" ;; esac',
        "done",
        f"mkdir -p {_NODE_TUNABLES}",
    ]
    for tunable in KUBELET_KERNEL_TUNABLES:
        copy = f"{_NODE_TUNABLES}/{tunable.replace('/', '.')}"
        script += [
            f"if ! mountpoint -q /proc/sys/{tunable}; then",
            f"  cat /proc/sys/{tunable} > {copy}",
            f"  mount --bind {copy} /proc/sys/{tunable}",
            "fi",
        ]
    # What a real boot does with the node's sysctl.d files (a host booted again from its
    # disk has kubesalt's): its boot-time run came before its copies were there. Settings
    # that stay the machine's own are refused, and that is fine.
    script += ["systemctl restart systemd-sysctl.service || true"]
    inside(lab, node, ["sh", "-c", "\n".join(script)])


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


def power_off(lab, node):
    """Pull the node's plug: every process of it killed at once (no shutdown, nothing
    flushed by its services), its network link down so that peers hear nothing (no reset,
    as from a host that is gone), its kernel network state (routes, rules) lost. Its disk
    stays. Returns False when it was not running."""
    nspawn = nspawn_pid(lab, node)
    if not nspawn:
        return False
    init = leader_pid(nspawn)
    # The link first: the sockets of the killed processes would otherwise send their peers
    # a FIN or a reset, which no host that lost its power does.
    run(["ip", "link", "set", node.veth_host, "down"], check=False)
    run(["ip", "-n", node.netns, "link", "set", "eth0", "down"], check=False)
    # PID 1 of the container: its PID namespace, every process of the host, ends with it;
    # then nspawn, which would otherwise shut down what is left.
    stop_pids([pid for pid in (init,) if pid], at_once=True)
    stop_pids([nspawn], at_once=True)
    pid_file(lab, node).unlink(missing_ok=True)
    run(["ip", "-n", node.netns, "route", "flush", "table", "main"], check=False)
    for top in cgroups(node):
        if top.exists():
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
    return True
