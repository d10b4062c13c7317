"""The kubesalt pillar model: merge with the formula defaults, validate, look up roles.

Pure functions without Salt dunders, shared by ``_modules/kubesalt.py`` and
``_states/kubesalt.py`` and unit-tested on their own. Everything here works on plain
dicts as Salt hands them over (YAML already parsed).

A problem names the pillar key it is about in the colon notation that ``pillar.get``
accepts (``kubesalt:nodes:worker-1:roles:0``) and says what was expected.
"""

import ipaddress

import kubesalt_core.artifact
import kubesalt_core.pillar_checks
import kubesalt_core.ports

PILLAR_KEY = "kubesalt"


ROLES = ("master", "worker", "router")


# Components with a pinned version (kube-* share "kubernetes"; felix, confd and typha share
# "calico").
COMPONENTS = (
    "kubernetes",
    "etcd",
    "calico",
    "containerd",
    "runc",
    "cni_plugins",
    "crictl",
    "coredns",
    "ingress_nginx",
    "nginx_ingress",
    "bird",
    "haproxy",
)


ARTIFACT_SOURCES = ("url", "package", "path")


# What pillar `artifacts` may name: the catalogue's artifacts.
ARTIFACT_NAMES = kubesalt_core.artifact.ARTIFACTS


KEY_TYPES = ("ecdsa-p256", "rsa-2048", "rsa-4096")


# ipvs is the architecture's choice; nftables and iptables for kernels without IPVS.
KUBE_PROXY_MODES = ("ipvs", "nftables", "iptables")


# How kube-apiserver reaches a Service it calls (webhooks, aggregated APIs): at its ready
# endpoints (--enable-aggregator-routing), or at its cluster IP.
APISERVER_SERVICE_ROUTING = ("endpoints", "cluster_ip")


PATH_KEYS = (
    "config_dir",
    "kubernetes_dir",
    "pki_dir",
    "ca_dir",
    "etcd_config_dir",
    "etcd_data_dir",
    "etcd_snapshot_dir",
    "systemd_dir",
    "bin_dir",
    "cni_bin_dir",
    "opt_dir",
    "manifest_dir",
    "log_dir",
    "kubelet_dir",
    "kube_proxy_dir",
    "calico_dir",
    "containerd_dir",
    "cni_conf_dir",
    "sysctl_dir",
    "modules_load_dir",
    "bird_dir",
    "heal_dir",
)


# kube-apiserver's secure port, unless cluster:apiserver_endpoint names another.
APISERVER_PORT = kubesalt_core.ports.APISERVER_PORT


# Kubernetes refuses a larger IPv4 service range (kube-apiserver: "mask must be >= 12").
MAX_SERVICE_PREFIX_V4 = 12


# 0, 23456 (AS_TRANS), 65535 and 4294967295 are reserved (RFC 7607, 6793, 7300).
RESERVED_ASNS = (0, 23456, 65535, 4294967295)


def merge(defaults, override):
    """Return ``defaults`` updated recursively with ``override``.

    Mappings merge key by key; any other value (lists included) in ``override`` replaces
    the default, so pillar can always say exactly which roles or sources it wants. An
    artifact's source (a mapping with ``source``) is one choice and replaces the default
    whole: ``source: path`` over a default ``source: package`` keeps no ``package``.
    """
    if not isinstance(defaults, dict) or not isinstance(override, dict) or "source" in override:
        return override
    merged = dict(defaults)
    for key, value in override.items():
        merged[key] = merge(defaults[key], value) if key in defaults else value
    return merged


def resolve_paths(paths):
    """Prefix every path with ``paths['root']`` (``/`` in production, a temp dir in tests)."""
    root = paths.get("root") or "/"
    resolved = {"root": root}
    for key, value in paths.items():
        if key != "root":
            resolved[key] = root.rstrip("/") + value if root != "/" else value
    return resolved


def split_endpoint(value, default_port=APISERVER_PORT):
    """``"host[:port]"`` -> ``(host, port)``; ``(None, None)`` when the port is not a number."""
    host, sep, port = value.rpartition(":")
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        return value, default_port
    if not port.isdigit():
        return None, None
    return host.strip("[]"), int(port)


def is_ip(value):
    try:
        ipaddress.ip_address(value)
    except (ValueError, TypeError):
        return False
    return True


def _node_entry(config, minion_id):
    nodes = config.get("nodes") if isinstance(config, dict) else None
    entry = nodes.get(minion_id) if isinstance(nodes, dict) else None
    return entry if isinstance(entry, dict) else None


def roles_of(config, minion_id):
    """Roles of ``minion_id`` as pillar states them, in ROLES order; [] when unknown."""
    declared = (_node_entry(config, minion_id) or {}).get("roles")
    if not isinstance(declared, list):
        return []
    return [role for role in ROLES if role in declared]


def masters(config):
    """``[(minion id, ip)]`` of every master, in id order."""
    return sorted(
        (mid, node["ip"])
        for mid, node in (config.get("nodes") or {}).items()
        if "master" in (node.get("roles") or [])
    )


def node_of(config, minion_id):
    """``minion_id``'s entry under ``nodes`` with its id and roles; {} when unknown."""
    entry = _node_entry(config, minion_id)
    if entry is None:
        return {}
    return {**entry, "id": minion_id, "roles": roles_of(config, minion_id)}


def assigned_states(pillar_present, problems, roles, formula="kubesalt"):
    """Decide which SLS a minion's highstate gets.

    - no kubesalt pillar, or a minion not under ``nodes``: only the notice, no component;
    - an invalid pillar: only the validation state, which fails and stops the run;
    - otherwise validation first, then one SLS per role.
    """
    if not pillar_present or (not roles and not kubesalt_core.pillar_checks.errors(problems)):
        return [f"{formula}.unassigned"]
    if kubesalt_core.pillar_checks.errors(problems):
        return [f"{formula}.validate"]
    return [f"{formula}.validate", *(f"{formula}.{role}" for role in roles)]
