"""The lab network: one bridge on the host holding the master's address, and per node a
network namespace joined to the bridge by a veth pair.

The first router is every other node's gateway, as a datacenter's router would be: once
kubesalt's router role has turned forwarding on, it forwards between the nodes by the
routes it learnt over BGP (the pods' blocks), so masters reach pods and a pod's gateway
(Calico's proxy-ARP 169.254.1.1, which the kernel answers only for an address it has a
route to) resolves. The router itself has no default route and there is no NAT: lab
addresses (198.18.0.0/15) never leave the machine, and anything else is dropped at the
router."""

from pathlib import Path

from kubesalt_lab.config import BRIDGE, PREFIX
from kubesalt_lab.system import run

NETNS_DIR = Path("/run/netns")


def _link_exists(name, netns=None):
    argv = ["ip", *(["-n", netns] if netns else []), "link", "show", "dev", name]
    return run(argv, check=False).returncode == 0


def ensure_bridge(lab):
    if not _link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    address = f"{lab.bridge_ip}/{lab.prefixlen}"
    if address not in run(["ip", "-o", "addr", "show", "dev", BRIDGE]).stdout:
        run(["ip", "addr", "add", address, "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def ensure_node(lab, node):
    """Create the node's namespace and veth (idempotent)."""
    if not (NETNS_DIR / node.netns).exists():
        run(["ip", "netns", "add", node.netns])
    ns = ["ip", "-n", node.netns]
    if not _link_exists("eth0", node.netns):
        if not _link_exists(node.veth_host):
            run(
                [
                    "ip",
                    "link",
                    "add",
                    node.veth_host,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    node.veth_peer,
                ]
            )
        run(["ip", "link", "set", node.veth_peer, "netns", node.netns])
        run([*ns, "link", "set", node.veth_peer, "name", "eth0"])
    address = f"{node.ip}/{lab.prefixlen}"
    if address not in run([*ns, "-o", "addr", "show", "dev", "eth0"]).stdout:
        run([*ns, "addr", "add", address, "dev", "eth0"])
    run([*ns, "link", "set", "eth0", "up"])
    run([*ns, "link", "set", "lo", "up"])
    run(["ip", "link", "set", node.veth_host, "master", BRIDGE, "up"])
    router = gateway(lab)
    # The router forwards once kubesalt's router role has set it up (not the lab's doing).
    if router is not None and router is not node:
        run([*ns, "route", "replace", "default", "via", router.ip, "dev", "eth0"])


def gateway(lab):
    """The node every other node routes through: the first router, if the lab has one."""
    return next((n for n in lab.ordered_nodes() if "router" in n.roles), None)


def lab_namespaces():
    """Names of lab namespaces that exist now (ours by their prefix)."""
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def lab_links():
    out = run(["ip", "-o", "link", "show"], check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [name for name in names if name.startswith(PREFIX)]


def namespace_pids(netns):
    out = run(["ip", "netns", "pids", netns], check=False).stdout
    return [int(p) for p in out.split()]


def remove_namespace(netns):
    run(["ip", "netns", "delete", netns], check=False)


def release_netns_dir():
    """`ip netns add` turns /run/netns into a mount point; give it back once it is empty."""
    if NETNS_DIR.is_dir() and not any(NETNS_DIR.iterdir()):
        while netns_dir_mounted():
            run(["umount", str(NETNS_DIR)])
        NETNS_DIR.rmdir()


def netns_dir_mounted():
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == str(NETNS_DIR) for line in mounts)


def remove_link(name):
    run(["ip", "link", "delete", name], check=False)
