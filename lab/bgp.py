"""The lab's BGP: a stand-in speaker on every worker, and what the router reports.

calico-node cannot be had on these machines. So that the routers' generated config meets
real BGP sessions, each lab worker runs a stand-in: BIRD 2 configured the way calico-confd
configures a node (the cluster AS, a session to every router, announcing the node's own pod
block, taking the other nodes' blocks into the kernel). It is a stand-in for calico-node,
not Calico: it runs as the transient unit ``kubesalt-lab-bgp-standin`` and has nothing to do
with the formula's ``calico-bird`` unit, which stays stopped in the lab.
"""

import ipaddress
import re
import time

from kubesalt_lab import containers
from kubesalt_lab.config import LabError

try:
    from kubesalt_ext.utils import kubesalt_calico
except ImportError:  # pragma: no cover - the lab runs from the repo's venv
    import kubesalt_calico

STANDIN_UNIT = "kubesalt-lab-bgp-standin"
STANDIN_CONF = "/run/kubesalt-lab-bgp-standin.conf"
STANDIN_SOCKET = "/run/kubesalt-lab-bgp-standin.ctl"
ROUTER_SOCKET = "/run/bird/bird.ctl"


def pod_block(cluster, node_id):
    """The node's pod block: the n-th block of the first pool, n = the worker's rank. (Calico's
    IPAM hands out blocks on demand; the stand-in takes a fixed one.)"""
    pool = kubesalt_calico.ip_pools(cluster)[0]
    workers = [name for name, _ in kubesalt_calico.bgp_nodes(cluster)]
    blocks = ipaddress.ip_network(pool["cidr"]).subnets(new_prefix=pool["block_size"])
    for rank, block in enumerate(blocks):
        if rank == workers.index(node_id):
            return str(block)
    raise LabError(f"no pod block left for {node_id}")


def standin_config(cluster, node_id):
    """BIRD 2 config of the stand-in on worker ``node_id``."""
    node = cluster["nodes"][node_id]
    cluster_as = int(cluster["network"]["as_number"])
    lines = [
        f"# kubesalt lab: stand-in for calico-node's BGP on {node_id} (not Calico).",
        f"router id {node['ip']};",
        "protocol device { scan time 10; }",
        "protocol kernel {",
        "  ipv4 { import none; export where source = RTS_BGP; };",
        "}",
        "protocol static own_block {",
        "  ipv4;",
        f"  route {pod_block(cluster, node_id)} blackhole;",
        "}",
    ]
    for name, router in kubesalt_calico.routers(cluster):
        protocol = "router_" + re.sub(r"[^A-Za-z0-9]", "_", name)
        lines += [
            f"protocol bgp {protocol} {{",
            f"  local as {cluster_as};",
            f"  neighbor {router['ip']} as {kubesalt_calico.router_as(cluster, router)};",
            "  direct;",
            "  graceful restart on;",
            "  connect delay time 1; connect retry time 2; hold time 3; keepalive time 1;",
            "  error wait time 1, 5;",
            "  ipv4 { gateway direct; import all; export where source = RTS_STATIC; };",
            "}",
        ]
    return "\n".join(lines) + "\n"


def start_standin(lab, node):
    """Write the stand-in's config and (re)start it as a transient unit on ``node``; one
    that runs with the same config is left alone (its sessions stay up)."""
    text = standin_config(lab.cluster, node.id)
    current = containers.inside(lab, node, ["cat", STANDIN_CONF], check=False).stdout
    active = containers.inside(
        lab, node, ["systemctl", "is-active", f"{STANDIN_UNIT}.service"], check=False
    ).stdout.strip()
    if current == text and active == "active":
        return False
    script = f"cat > {STANDIN_CONF} <<'KUBESALT_EOF'\n{text}KUBESALT_EOF\n"
    containers.inside(lab, node, ["sh", "-c", script])
    containers.inside(lab, node, ["bird", "-p", "-c", STANDIN_CONF])
    containers.inside(lab, node, ["systemctl", "stop", f"{STANDIN_UNIT}.service"], check=False)
    containers.inside(
        lab,
        node,
        [
            "systemd-run",
            f"--unit={STANDIN_UNIT}",
            "--description=kubesalt lab stand-in for calico-node's BGP (not Calico)",
            "bird", "-f", "-c", STANDIN_CONF, "-s", STANDIN_SOCKET,
        ],
    )  # fmt: skip
    return True


def start_standins(lab, progress, timeout=30):
    """Start every worker's stand-in (one already running with its config is left alone),
    then wait until the routers report every session Established; returns the sessions
    that are not (empty when all are up)."""
    for node in lab.ordered_nodes():
        if "worker" in node.roles and start_standin(lab, node):
            block = pod_block(lab.cluster, node.id)
            progress(f"bgp: stand-in speaker on {node.id} announces {block}")
    deadline = time.monotonic() + timeout
    while True:
        rows = sessions(lab)
        down = [
            f"{r[0]}/{r[1]}: {r[3] or r[2]}" for r in rows if not r[3].startswith("Established")
        ]
        if rows and not down:
            progress(f"bgp: {len(rows)} sessions Established")
            return []
        if time.monotonic() > deadline:
            progress(f"bgp: not Established after {timeout}s: {', '.join(down) or 'no session'}")
            return down or ["no session"]
        time.sleep(0.5)


def parse_protocols(text):
    """``birdc show protocols`` -> [{name, proto, state, since, info}] for BGP protocols."""
    rows = []
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) >= 5 and fields[1] == "BGP":
            rows.append(
                {
                    "name": fields[0],
                    "state": fields[3],
                    "info": fields[5].strip() if len(fields) > 5 else "",
                }
            )
    return rows


def sessions(lab):
    """Every router's BGP sessions as BIRD reports them: [[router, session, state, info]]."""
    rows = []
    for node in lab.ordered_nodes():
        if "router" not in node.roles or not containers.leader(lab, node):
            continue
        out = containers.inside(
            lab, node, ["birdc", "-s", ROUTER_SOCKET, "show", "protocols"], check=False
        )
        if out.returncode != 0:
            rows.append([node.id, "-", "-", (out.stdout + out.stderr).strip()[-120:]])
            continue
        rows += [[node.id, p["name"], p["state"], p["info"]] for p in parse_protocols(out.stdout)]
    return rows


def kernel_routes(lab, node):
    """The BGP routes in ``node``'s kernel table: [prefix]."""
    out = containers.inside(lab, node, ["ip", "-4", "route", "show", "proto", "bird"]).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())
