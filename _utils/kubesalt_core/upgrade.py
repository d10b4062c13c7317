"""Kubernetes version changes: the highstate's guard, the skew rules and the upgrade plan.

A highstate never changes the Kubernetes version of a node by itself: :func:`held` says
why it stops. The upgrade orchestration (``kubesalt.orch.upgrade``) authorizes each step
with an inline pillar (:data:`AUTHORIZATION_KEY`: the version, and for the control-plane
steps which components), after :func:`skew_problems` found the step allowed by the
Kubernetes version skew policy, in the order :func:`plan` gives: apiservers one at a
time, then the rest of each master, then the workers in batches, each drained first.

No Salt dunders and no I/O here.
"""

import re
from dataclasses import dataclass, field

import kubesalt_core.artifact

# The inline pillar the orchestration passes with each step it applies.
AUTHORIZATION_KEY = "kubesalt_upgrade"

ORCHESTRATION = "kubesalt.orch.upgrade"

# The annotation the orchestration puts on a node it cordons, so a rerun knows the cordon
# is its own to lift (a node an operator cordoned stays cordoned).
CORDON_ANNOTATION = "kubesalt.io/upgrade-cordoned"

KUBERNETES_BINARIES = tuple(
    b.name for b in kubesalt_core.artifact.CATALOGUE if b.artifact == "kubernetes"
)

# The unit that runs the apiserver, upgraded alone and first on every master.
APISERVER = "kube-apiserver"

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def parse(version):
    """``"1.37.2"`` or ``"v1.37.2"`` -> ``(1, 37, 2)``; ValueError for anything else."""
    found = _VERSION.fullmatch(str(version).strip())
    if not found:
        raise ValueError(f"not a Kubernetes version: {version!r}")
    return tuple(int(part) for part in found.groups())


def reported_version(output):
    """The version a binary reports (``Kubernetes v1.37.2``, ``Client Version: v1.37.2``),
    as ``"1.37.2"``, or None when its output names none."""
    found = re.search(r"(?:Kubernetes|Client Version:)\s+v(\d+\.\d+\.\d+)", output or "")
    return found.group(1) if found else None


def version_argv(path, binary):
    """The command that makes ``binary`` (installed at ``path``) print its version."""
    if binary == "kubectl":
        return [path, "version", "--client"]
    return [path, "--version"]


def authorized_version(authorization):
    """The version the orchestration's inline pillar authorizes, or None."""
    if isinstance(authorization, dict) and authorization.get("version"):
        return str(authorization["version"])
    return None


def held(node_id, installed, target, authorization=None):
    """Why a state run on ``node_id`` must not change its Kubernetes binaries: a list of
    messages, empty when it may go on.

    installed
        ``{binary: version or None}`` as the binaries on the node report it (None: not
        installed, or it reports no version).
    target
        pillar ``versions:kubernetes``.
    authorization
        the inline pillar :data:`AUTHORIZATION_KEY` of the upgrade orchestration, if any.
    """
    moving = {b: v for b, v in sorted(installed.items()) if v and v != str(target)}
    if not moving:
        return []
    allowed = authorized_version(authorization)
    if allowed == str(target):
        return []
    if allowed:
        return [
            f"{node_id}: the upgrade orchestration authorized Kubernetes {allowed}, but pillar "
            f"versions:kubernetes is {target}; run {ORCHESTRATION} again"
        ]
    by_version = {}
    for binary, version in moving.items():
        by_version.setdefault(version, []).append(binary)
    found = "; ".join(f"{', '.join(b)} {v}" for v, b in sorted(by_version.items()))
    return [
        f"{node_id} runs Kubernetes {found}, and pillar versions:kubernetes is {target}: a "
        "highstate does not change the Kubernetes version (all apiservers and kubelets would "
        "restart at once, without a drain). Nothing was changed. Run: salt-run "
        f"state.orchestrate {ORCHESTRATION} (add test=True to see the plan)"
    ]


def scope(authorization):
    """The units a step of the orchestration may touch (None: all of the node's)."""
    if not isinstance(authorization, dict):
        return None
    components = authorization.get("components")
    return list(components) if components else None


# --- the skew policy ---------------------------------------------------------------------


def skew_problems(target, versions, kubelets=None):
    """What the Kubernetes version skew policy forbids in moving to ``target``.

    versions
        ``{node: {binary: version or None}}``: every node's Kubernetes binaries.
    kubelets
        ``{node: version}`` as the Nodes report their kubelets (optional).

    One minor version at a time (every binary on ``target``'s minor or the one before),
    never down, and never a kubelet newer than the oldest apiserver.
    """
    wanted = parse(target)
    problems = []
    for node, binaries in sorted(versions.items()):
        for binary, version in sorted(binaries.items()):
            if not version:
                continue
            have = parse(version)
            if have > wanted:
                problems.append(
                    f"{node}: {binary} is {version}, newer than {target}: kubesalt does not "
                    "downgrade Kubernetes (expected a version equal to or newer than every "
                    "installed one)"
                )
            elif have[:2] < (wanted[0], wanted[1] - 1):
                problems.append(
                    f"{node}: {binary} is {version}; {target} skips a minor version "
                    f"(expected {wanted[0]}.{wanted[1] - 1}.x or {wanted[0]}.{wanted[1]}.x: "
                    "upgrade one minor version at a time)"
                )
    apiservers = [parse(b[APISERVER]) for b in versions.values() if b.get(APISERVER)]
    if apiservers and kubelets:
        oldest = min(apiservers)
        for node, version in sorted(kubelets.items()):
            if version and parse(version) > oldest:
                problems.append(
                    f"{node}: kubelet {version} is newer than the oldest apiserver "
                    f"({'.'.join(map(str, oldest))}); a kubelet must never be newer"
                )
    return problems


# --- the plan -------------------------------------------------------------------------------


@dataclass
class Node:
    """What the plan needs to know of one node."""

    id: str
    roles: list
    versions: dict  # {binary: version or None}, its Kubernetes binaries
    unschedulable: bool = False
    cordoned_by_upgrade: bool = False

    def behind(self, target, binaries=None):
        """This node's binaries (of ``binaries``, default all) not on ``target``."""
        return sorted(
            b
            for b, v in self.versions.items()
            if v and v != str(target) and (binaries is None or b in binaries)
        )


@dataclass
class Plan:
    target: str
    apiservers: list = field(default_factory=list)  # masters whose apiserver moves
    masters: list = field(default_factory=list)  # masters whose other binaries move
    batches: list = field(default_factory=list)  # [[worker, ...], ...]
    uncordon: list = field(default_factory=list)  # upgraded, still cordoned by a stopped run
    current: list = field(default_factory=list)  # nodes already on target

    def steps(self):
        """The plan, node by node, as lines an operator reads."""
        lines = []
        for node in self.apiservers:
            lines.append(f"{node}: kube-apiserver to {self.target}, then wait for /readyz")
        for node in self.masters:
            lines.append(f"{node}: the rest of the control plane to {self.target}")
        for number, batch in enumerate(self.batches, 1):
            for node in batch:
                lines.append(
                    f"batch {number}: {node}: cordon, drain, upgrade to {self.target}, "
                    "wait Ready, uncordon"
                )
        for node in self.uncordon:
            lines.append(f"{node}: on {self.target} already; uncordon (a stopped run left it)")
        for node in self.current:
            lines.append(f"{node}: on {self.target} already")
        return lines

    @property
    def empty(self):
        return not (self.apiservers or self.masters or self.batches or self.uncordon)


def plan(target, nodes, batch_size):
    """The order the orchestration upgrades ``nodes`` (a list of :class:`Node`) in."""
    result = Plan(str(target))
    ordered = sorted(nodes, key=lambda n: n.id)
    for node in ordered:
        if "master" in node.roles and node.behind(target, (APISERVER,)):
            result.apiservers.append(node.id)
    workers = []
    for node in ordered:
        behind = node.behind(target)
        if "master" in node.roles and (set(behind) - {APISERVER} or node.id in result.apiservers):
            result.masters.append(node.id)
        elif "worker" in node.roles and behind:
            workers.append(node.id)
        elif node.cordoned_by_upgrade:
            result.uncordon.append(node.id)
        elif not behind and any(node.versions.values()):
            result.current.append(node.id)
    size = max(1, int(batch_size))
    result.batches = [workers[i : i + size] for i in range(0, len(workers), size)]
    return result


# --- draining ---------------------------------------------------------------------------------

_EVICTION_ERROR = re.compile(r'error when evicting pods/"([^"]+)" -n "([^"]+)".*?: (.+)')


def drain_failure(node, output, blocking_budgets=()):
    """One message for a drain that did not finish: the pods kubectl could not evict and
    why (the last reason for each), and the PodDisruptionBudgets that allow no disruption
    (``[(namespace, name)]``)."""
    reasons = {}
    for line in (output or "").splitlines():
        found = _EVICTION_ERROR.search(line)
        if found:
            pod, namespace, why = found.groups()
            seen = reasons.setdefault(f"{namespace}/{pod}", [])
            if why.strip() not in seen:
                seen.append(why.strip())
    parts = [f"{pod}: {', then '.join(why)}" for pod, why in sorted(reasons.items())]
    if blocking_budgets:
        names = ", ".join(f"{ns}/{name}" for ns, name in sorted(blocking_budgets))
        parts.append(f"PodDisruptionBudgets allowing no disruption: {names}")
    if not parts:
        tail = [line for line in (output or "").splitlines() if line.strip()][-3:]
        parts = tail or ["kubectl drain failed without saying why"]
    return (
        f"drain of {node} did not finish; it was uncordoned and the upgrade stops here: "
        + "; ".join(parts)
    )


# --- pre-flight ---------------------------------------------------------------------------------


def preflight(expected, answered, cluster, etcd):
    """What stops the upgrade before it starts.

    expected
        ``{minion id: roles}`` of every node pillar declares (routers included).
    answered
        the minions that answered.
    cluster
        :func:`kubesalt_upgrade.cluster_nodes`: ``{Node name: {ready, ...}}``.
    etcd
        :func:`kubesalt_etcd.health`'s summary.
    """
    problems = []
    silent = sorted(set(expected) - set(answered))
    if silent:
        problems.append(
            f"not answering: {', '.join(silent)} (every node in pillar must answer before an "
            "upgrade)"
        )
    for node, roles in sorted(expected.items()):
        if "worker" in roles and node not in cluster:
            problems.append(f"{node}: a worker in pillar without a Node in the cluster")
    for node, state in sorted(cluster.items()):
        if not state.get("ready"):
            problems.append(f"{node}: Node is not Ready (every node must be Ready)")
    voting = etcd.get("voting_members", 0)
    if etcd.get("healthy_voting_members", 0) < voting or not voting:
        problems.append(
            f"etcd: {etcd.get('healthy_voting_members', 0)} of {voting} voting members "
            "healthy (every member must be healthy before an upgrade)"
        )
    return problems
