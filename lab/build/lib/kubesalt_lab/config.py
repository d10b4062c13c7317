"""Where the lab keeps things and what it is made of; read from the example pillar."""

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import kubesalt_core.pillar
import kubesalt_core.pillar_checks
import kubesalt_core.pillar_schema

REPO = Path(__file__).resolve().parents[2]
LAB_PILLAR = REPO / "pillar" / "kubesalt" / "init.sls"
FORMULA_DEFAULTS = REPO / "states" / "kubesalt" / "defaults.yaml"
DEFAULT_CACHE = Path("/var/cache/kubesalt-lab")
DEFAULT_RUN = Path("/run/kubesalt-lab")
# Names of every network object the lab creates start with this, so `down` can find them
# even when `up` died before writing down what it made.
PREFIX = "ksl-"
BRIDGE = f"{PREFIX}br0"
ROLE_ORDER = ("master", "worker", "router")


@dataclass(frozen=True)
class Node:
    id: str
    roles: tuple
    ip: str

    @property
    def netns(self):
        return f"{PREFIX}{self.id}"

    @property
    def veth_host(self):
        return f"{PREFIX}{self.id}"[:15]

    @property
    def veth_peer(self):
        return f"{PREFIX}{self.id}"[:13] + "-c"


@dataclass(frozen=True)
class Lab:
    cache_dir: Path
    run_dir: Path
    prefixlen: int
    bridge_ip: str
    nodes: tuple = field(default_factory=tuple)
    artifacts: dict = field(default_factory=dict, hash=False)
    # The merged cluster config of the lab pillar (defaults + pillar/kubesalt/init.sls).
    cluster: dict = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def rootfs(self):
        return self.cache_dir / "rootfs"

    @property
    def layer_cache(self):
        """Compressed image layers, by the digest of what they compress."""
        return self.cache_dir / "layers"

    @property
    def venv(self):
        return REPO / ".venv"

    @property
    def master_dir(self):
        return self.run_dir / "master"

    def node_dir(self, node):
        return self.run_dir / "nodes" / node.id

    def versions(self):
        """The ``versions:`` the lab's pillar pins (formula defaults, the example pillar)."""
        return dict(self.cluster.get("versions") or {})

    def node(self, node_id):
        for node in self.nodes:
            if node.id == node_id:
                return node
        known = ", ".join(n.id for n in self.nodes)
        raise LabError(f"unknown node {node_id!r}; the lab has: {known}")

    def ordered_nodes(self):
        """Masters first, then workers, then routers (the order a cluster comes up in)."""

        def rank(node):
            return min(ROLE_ORDER.index(r) for r in node.roles)

        return sorted(self.nodes, key=lambda n: (rank(n), n.id))


class LabError(Exception):
    """Something the operator can act on; the CLI prints it without a traceback."""


def load(cache_dir=None, run_dir=None, pillar_file=LAB_PILLAR):
    """Build the Lab from the example pillar; refuse addresses outside 198.18.0.0/15."""
    pillar = kubesalt_core.pillar.merge(
        yaml.safe_load(FORMULA_DEFAULTS.read_text()),
        yaml.safe_load(Path(pillar_file).read_text())["kubesalt"],
    )
    problems = kubesalt_core.pillar_checks.errors(kubesalt_core.pillar_schema.validate(pillar))
    if problems:
        raise LabError("the lab pillar is invalid: " + "; ".join(map(str, problems)))
    node_net = ipaddress.IPv4Network(pillar["network"]["node_cidr"])
    if not node_net.subnet_of(ipaddress.IPv4Network("198.18.0.0/15")):
        raise LabError(f"lab node_cidr {node_net} is outside 198.18.0.0/15")
    taken = {n["ip"] for n in pillar["nodes"].values()}
    bridge_ip = next(str(ip) for ip in node_net.hosts() if str(ip) not in taken)
    nodes = tuple(
        Node(id=mid, roles=tuple(kubesalt_core.pillar.roles_of(pillar, mid)), ip=n["ip"])
        for mid, n in pillar["nodes"].items()
    )
    return Lab(
        cache_dir=Path(cache_dir or os.environ.get("KUBESALT_LAB_CACHE") or DEFAULT_CACHE),
        run_dir=Path(run_dir or os.environ.get("KUBESALT_LAB_RUN") or DEFAULT_RUN),
        prefixlen=node_net.prefixlen,
        bridge_ip=bridge_ip,
        nodes=nodes,
        artifacts=pillar.get("artifacts") or {},
        cluster=pillar,
    )
