"""The kubesalt pillar model: merge with the formula defaults, validate, look up roles.

Pure functions without Salt dunders, shared by ``_modules/kubesalt.py`` and
``_states/kubesalt.py`` and unit-tested on their own. Everything here works on plain
dicts as Salt hands them over (YAML already parsed).

A problem names the pillar key it is about in the colon notation that ``pillar.get``
accepts (``kubesalt:nodes:worker-1:roles:0``) and says what was expected.
"""

import difflib
import ipaddress
import re
from dataclasses import dataclass

import kubesalt_core.apiserver_proxy
import kubesalt_core.artifact
import kubesalt_core.calico
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
# `unavailable`: this site has no such binary (the lab: kube-* and Calico); kubesalt writes
# the component's units and configs but never enables or starts them.
ARTIFACT_SOURCES = ("url", "package", "path", "unavailable")
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

ERROR = "error"
WARNING = "warning"

_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Problem:
    """One finding about the pillar: the key it is about, what is wrong, how bad."""

    key: str
    message: str
    level: str = ERROR

    def __str__(self):
        return f"{self.key}: {self.message}"


# --- merging -------------------------------------------------------------------------------


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


# --- leaf checks: each returns (parsed value or None, [Problem]) ----------------------------


def _kind(value):
    return "nothing" if value is None else type(value).__name__


def _missing(key, expected):
    return [Problem(key, f"missing; expected {expected}")]


def _check_minion_ids(value, key):
    """A list of minion ids (each checked against ``nodes`` where it is used); null: []."""
    if value is None:
        return [], []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return None, [Problem(key, f"expected a list of minion ids, got {value!r}")]
    return value, []


def _check_dns_label(value, key):
    expected = "a DNS label (lowercase letters, digits and '-', at most 63 characters)"
    if value is None:
        return None, _missing(key, expected)
    if not isinstance(value, str) or not _DNS_LABEL_RE.match(value):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def _is_dns_name(value):
    """An RFC 1123 name: dot-separated DNS labels, at most 253 characters."""
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    return all(_DNS_LABEL_RE.match(label) for label in value.split("."))


def _check_dns_domain(value, key):
    expected = "a DNS domain such as 'cluster.local'"
    if value is None:
        return None, _missing(key, expected)
    if not _is_dns_name(value):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def _check_as_number(value, key):
    expected = "an AS number, an integer from 1 to 4294967294 (64512-65534 for a private AS)"
    if value is None:
        return None, _missing(key, expected)
    if isinstance(value, bool) or not isinstance(value, int):
        return None, [Problem(key, f"{value!r} is a {_kind(value)}; expected {expected}")]
    if not 1 <= value <= 4294967294:
        return None, [Problem(key, f"{value} is out of range; expected {expected}")]
    if value in RESERVED_ASNS:
        return None, [Problem(key, f"{value} is a reserved AS number; expected {expected}")]
    return value, []


def _check_cidr(value, key):
    expected = "an IPv4 network in CIDR notation such as '198.18.0.0/24'"
    if value is None:
        return None, _missing(key, expected)
    if not isinstance(value, str) or "/" not in value:
        return None, [Problem(key, f"{value!r} is not {expected}")]
    try:
        net = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        return None, [Problem(key, f"{value!r} is not {expected}")]
    if str(net) != value:
        return None, [
            Problem(key, f"{value!r} has host bits set; expected the network address {net}")
        ]
    return net, []


def _check_ip(value, key):
    expected = "an IPv4 address such as '198.18.0.10'"
    if value is None:
        return None, _missing(key, expected)
    try:
        return ipaddress.IPv4Address(value), []
    except (ValueError, TypeError):
        return None, [Problem(key, f"{value!r} is not {expected}")]


def _check_dns_upstream(value, key):
    """CoreDNS's upstream resolvers: null (the node's /etc/resolv.conf), or IPv4 addresses
    ([]: none; the cluster answers only its own names)."""
    if value is None:
        return None, []
    if not isinstance(value, list):
        expected = "null or a list of IPv4 addresses"
        return None, [Problem(key, f"expected {expected}, got {_kind(value)}")]
    found, problems = [], []
    for i, item in enumerate(value):
        address, more = _check_ip(item, f"{key}:{i}")
        problems += more
        found.append(address)
    return found, problems


def _check_version(value, key):
    expected = "a version string such as '1.37.0' (quote it in YAML)"
    if value is None or value == "":
        return None, _missing(key, expected)
    if not isinstance(value, str) or not _VERSION_RE.match(value):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def _check_abs_path(value, key):
    expected = "an absolute path"
    if value is None or value == "":
        return None, _missing(key, expected)
    if not isinstance(value, str) or not value.startswith("/"):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def _check_bool(value, key):
    if not isinstance(value, bool):
        return None, [Problem(key, f"{value!r} is not true or false")]
    return value, []


def _check_int_range(low, high, what):
    expected = f"{what}, a whole number from {low} to {high}"

    def check(value, key):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return None, [Problem(key, f"{value!r} is not {expected}")]
        return value, []

    return check


_check_block_size = _check_int_range(20, 32, "Calico's IPv4 block size")
_check_node_port = _check_int_range(30000, 32767, "a NodePort")


def _check_ip_pools(value, key):
    if value is None or value == []:
        return [], []
    if not isinstance(value, list):
        expected = "a list of {name, cidr, block_size, nat_outgoing}"
        return None, [Problem(key, f"expected {expected}, got {_kind(value)}")]
    fields = {
        "name": _check_dns_label,
        "cidr": _check_cidr,
        "block_size": _check_optional(_check_block_size),
        "nat_outgoing": _check_optional(_check_bool),
    }
    parsed, problems = [], []
    for i, pool in enumerate(value):
        found_pool, found = _check_fields(pool, f"{key}:{i}", fields)
        parsed.append(found_pool)
        problems += found
    return parsed, problems


def _check_choice(choices):
    def choice(value, key):
        if value not in choices:
            return None, [Problem(key, f"{value!r} is not one of: {', '.join(choices)}")]
        return value, []

    return choice


# A container image reference as containerd parses it (the distribution reference grammar):
# [registry[:port]/]path[:tag][@digest], the path in lowercase components.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(
    rf"^(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def is_image_reference(value):
    return isinstance(value, str) and len(value) <= 255 and bool(_IMAGE_RE.match(value))


def _check_image(value, key):
    if not is_image_reference(value):
        expected = "a container image reference ([registry/]path[:tag][@digest], lowercase path)"
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


_REGISTRY_RE = re.compile(rf"^{_DOMAIN}(?::[0-9]{{1,5}})?$")
_MIRROR_RE = re.compile(rf"^https?://{_DOMAIN}(?::[0-9]{{1,5}})?(?:/[^\s]*)?$")


def _check_registry_mirrors(value, key):
    """``{registry host: [mirror URL, ...]}``: where containerd pulls each registry's images."""
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        expected = "a mapping of registry host to a list of mirror URLs"
        return None, [Problem(key, f"expected {expected}, got {_kind(value)}")]
    problems = []
    for registry, mirrors in value.items():
        where = f"{key}:{registry}"
        if not isinstance(registry, str) or not _REGISTRY_RE.match(registry):
            problems.append(Problem(where, "not a registry host (e.g. registry.k8s.io)"))
            continue
        if not isinstance(mirrors, list) or not mirrors:
            problems.append(Problem(where, f"expected a list of mirror URLs, got {_kind(mirrors)}"))
            continue
        for i, mirror in enumerate(mirrors):
            if not isinstance(mirror, str) or not _MIRROR_RE.match(mirror):
                problems.append(Problem(f"{where}:{i}", f"{mirror!r} is not an http(s):// URL"))
    return value, problems


def _check_optional(check):
    def optional(value, key):
        return (None, []) if value is None else check(value, key)

    return optional


def _check_endpoint(value, key):
    expected = "a DNS name or IP address, optionally with :port"
    host, port = split_endpoint(value) if isinstance(value, str) else (None, None)
    if host is None or not (_is_dns_name(host) or is_ip(host)) or not 0 < port < 65536:
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


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


# --- mappings ---------------------------------------------------------------------------------


def _unknown_key(key, name, allowed):
    expected = ", ".join(sorted(allowed))
    hint = difflib.get_close_matches(str(name), allowed, n=1)
    suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
    return Problem(f"{key}:{name}", f"unknown key; expected one of: {expected}{suffix}")


def _check_fields(value, key, fields):
    """Check a mapping with a fixed set of keys; returns ({name: parsed}, [Problem])."""
    if not isinstance(value, dict):
        if value is None:
            return None, _missing(key, "a mapping")
        return None, [Problem(key, f"expected a mapping, got {_kind(value)}")]
    problems = [_unknown_key(key, name, fields) for name in value if name not in fields]
    parsed = {}
    for name, check in fields.items():
        parsed[name], found = check(value.get(name), f"{key}:{name}")
        problems += found
    return parsed, problems


def _mapping(fields):
    return lambda value, key: _check_fields(value, key, fields)


# --- artifacts --------------------------------------------------------------------------------

_ARTIFACT_FIELDS = {
    "url": {"url": None, "sha256": None, "members": None},
    "package": {"package": None},
    "path": {"path": None},
    "unavailable": {"reason": None},
}


def _check_artifact(value, key):
    if not isinstance(value, dict):
        return None, [Problem(key, f"expected a mapping with 'source', got {_kind(value)}")]
    source = value.get("source")
    if source not in ARTIFACT_SOURCES:
        choices = ", ".join(ARTIFACT_SOURCES)
        return None, [Problem(f"{key}:source", f"{source!r} is not one of: {choices}")]
    allowed = {"source", *_ARTIFACT_FIELDS[source]}
    problems = [_unknown_key(key, name, allowed) for name in value if name not in allowed]
    if source == "url":
        url = value.get("url")
        if not isinstance(url, str) or not re.match(r"^(https?|file)://", url):
            problems.append(Problem(f"{key}:url", f"{url!r} is not an http(s):// or file:// URL"))
        sha = value.get("sha256")
        if not isinstance(sha, str) or not _SHA256_RE.match(sha):
            expected = "a sha256 (64 lowercase hex digits, quoted in YAML)"
            problems.append(Problem(f"{key}:sha256", f"{sha!r} is not {expected}"))
        members = value.get("members")
        if members is not None and not (
            isinstance(members, dict)
            and all(isinstance(k, str) and isinstance(v, str) and v for k, v in members.items())
        ):
            expected = "a mapping of binary name to its path inside the archive"
            problems.append(Problem(f"{key}:members", f"expected {expected}"))
    elif source == "package":
        if not isinstance(value.get("package"), str) or not value.get("package"):
            problems += _missing(f"{key}:package", "the name of a distribution package")
    elif source == "unavailable":
        if not isinstance(value.get("reason", ""), str):
            problems.append(Problem(f"{key}:reason", "expected a sentence saying why"))
    else:
        problems += _check_abs_path(value.get("path"), f"{key}:path")[1]
    return value, problems


def _check_artifacts(value, key):
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        expected = "a mapping of component to source"
        return None, [Problem(key, f"expected {expected}, got {_kind(value)}")]
    problems = []
    for name, spec in value.items():
        if name not in ARTIFACT_NAMES:
            known = ", ".join(ARTIFACT_NAMES)
            problems.append(Problem(f"{key}:{name}", f"unknown artifact; expected one of: {known}"))
            continue
        problems += _check_artifact(spec, f"{key}:{name}")[1]
    return value, problems


# --- pki --------------------------------------------------------------------------------------


def _check_days(value, key):
    expected = "a whole number of days, at least 1"
    if value is None:
        return None, _missing(key, expected)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def _check_key_type(value, key):
    if value not in KEY_TYPES:
        return None, [Problem(key, f"{value!r} is not one of: {', '.join(KEY_TYPES)}")]
    return value, []


def _check_extra_sans(value, key):
    if value is None:
        return [], []
    if not isinstance(value, list):
        return None, [
            Problem(key, f"expected a list of DNS names or IP addresses, got {_kind(value)}")
        ]
    problems = []
    for index, san in enumerate(value):
        if not (is_ip(san) or _is_dns_name(san)):
            problems.append(
                Problem(f"{key}:{index}", f"{san!r} is neither a DNS name nor an IP address")
            )
    return value, problems


def _check_wait_seconds(value, key):
    expected = "a whole number of seconds from 0 to 600"
    if value is None:
        return None, _missing(key, expected)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 600:
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def _check_ca_host(value, key):
    """A node's minion id, or null (the first master); which node is checked below."""
    if value is not None and not isinstance(value, str):
        return None, [Problem(key, f"{value!r} is not a node's minion id")]
    return value, []


_PKI_FIELDS = {
    "ca_host": _check_ca_host,
    "key_type": _check_key_type,
    "leaf_days": _check_days,
    "ca_days": _check_days,
    "renew_before_days": _check_days,
    "apiserver_extra_sans": _check_extra_sans,
    "service_account_wait_seconds": _check_wait_seconds,
}


def _check_backoff(value, key):
    expected = "a list of 1 to 10 whole numbers of seconds, each from 0 to 3600"
    if value is None:
        return None, _missing(key, expected)
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 10
        or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 3600 for v in value)
    ):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


_HEAL_FIELDS = {
    "backoff_seconds": _check_backoff,
    "budget_attempts": _check_int_range(1, 100, "a number of repairs"),
    "window_seconds": _check_int_range(60, 86400, "a number of seconds"),
    "hold_seconds": _check_int_range(1, 600, "a number of seconds"),
    "restarts_before_reapply": _check_int_range(1, 10, "a number of restarts"),
}


# --- nodes ------------------------------------------------------------------------------------


def _check_roles(value, key):
    expected = "a list of roles from: " + ", ".join(ROLES)
    if value is None:
        return None, _missing(key, expected)
    if not isinstance(value, list):
        return None, [Problem(key, f"expected {expected}, got {_kind(value)} {value!r}")]
    if not value:
        return None, [Problem(key, f"empty; expected {expected}")]
    problems = []
    for index, role in enumerate(value):
        if not isinstance(role, str) or role not in ROLES:
            hint = difflib.get_close_matches(str(role), ROLES, n=1)
            suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.append(
                Problem(
                    f"{key}:{index}",
                    f"unknown role {role!r}; expected one of: {', '.join(ROLES)}{suffix}",
                )
            )
        elif role in value[:index]:
            problems.append(Problem(f"{key}:{index}", f"role {role!r} is listed twice"))
    if {"router", "worker"} <= {r for r in value if isinstance(r, str)}:
        problems.append(
            Problem(
                key,
                "roles 'router' and 'worker' cannot share a host: both run a BGP "
                "speaker on port 179; put the route reflector on its own host",
            )
        )
    return (value if not problems else None), problems


# as_number and router_id matter on routers (BGP); the others ignore them.
_NODE_FIELDS = {
    "roles": _check_roles,
    "ip": _check_ip,
    "as_number": _check_optional(_check_as_number),
    "router_id": _check_optional(_check_ip),
}


def _node_name_problem(minion_id, key):
    """Minion ids become Kubernetes node names (RFC 1123 subdomains)."""
    if _is_dns_name(minion_id):
        return []
    return [
        Problem(
            key,
            f"minion id {minion_id!r} is not a valid Kubernetes node name; expected "
            "lowercase letters, digits, '-' and '.' (RFC 1123)",
        )
    ]


def _check_nodes(value, key):
    """Check ``nodes``: {minion id: node}; returns ({id: parsed node}, [Problem])."""
    if value is None or value == {}:
        return {}, [
            Problem(key, "no nodes; expected a mapping of minion id to {roles: [...], ip: ...}")
        ]
    if not isinstance(value, dict):
        return None, [Problem(key, f"expected a mapping of minion id to node, got {_kind(value)}")]
    problems, parsed, seen = [], {}, {}
    for minion_id, node in value.items():
        if minion_id is None or not str(minion_id).strip():
            problems.append(
                Problem(
                    key,
                    f"a node has an empty minion id ({minion_id!r}); "
                    "expected the minion's id as the key",
                )
            )
            continue
        minion_id = str(minion_id)
        node_key = f"{key}:{minion_id}"
        problems += _node_name_problem(minion_id, node_key)
        canonical = minion_id.strip().rstrip(".").lower()
        if canonical in seen:
            problems.append(
                Problem(
                    node_key,
                    f"duplicate minion id: {minion_id!r} names the "
                    f"same node as {seen[canonical]!r}",
                )
            )
        seen.setdefault(canonical, minion_id)
        parsed[minion_id], found = _check_fields(node, node_key, _NODE_FIELDS)
        problems += found
    return parsed, problems


# --- the whole pillar ---------------------------------------------------------------------------

SCHEMA = {
    "cluster": _mapping(
        {
            "name": _check_dns_label,
            "domain": _check_dns_domain,
            "apiserver_endpoint": _check_optional(_check_endpoint),
        }
    ),
    "network": _mapping(
        {
            "as_number": _check_as_number,
            "node_cidr": _check_cidr,
            "pod_cidr": _check_cidr,
            "service_cidr": _check_cidr,
            "cluster_dns_ip": _check_ip,
            "dns_upstream": _check_dns_upstream,
            "bgp": _mapping(
                {
                    "advertise_service_cluster_ips": _check_bool,
                    "ebgp": _check_bool,
                    "fast_timers": _check_bool,
                    "route_reflector_cluster_id": _check_optional(_check_ip),
                }
            ),
            "ip_pools": _check_ip_pools,
        }
    ),
    "versions": _mapping(dict.fromkeys(COMPONENTS, _check_version)),
    "artifacts": _check_artifacts,
    "pki": _mapping(_PKI_FIELDS),
    "heal": _mapping(_HEAL_FIELDS),
    "ingress": _mapping(
        {
            "controller": _check_choice(("nginx", "ingress-nginx")),
            "namespace": _check_dns_label,
            "class_name": _check_dns_label,
            "image": _check_optional(_check_image),
            "http_node_port": _check_node_port,
            "https_node_port": _check_node_port,
        }
    ),
    "apiserver": _mapping({"service_routing": _check_choice(APISERVER_SERVICE_ROUTING)}),
    "apiserver_proxy": _mapping(
        {
            "enabled": _check_optional(_check_bool),
            "port": _check_int_range(1, 65535, "a TCP port"),
            "drain": _check_minion_ids,
        }
    ),
    "kubelet": _mapping({"fail_cgroup_v1": _check_bool}),
    "kube_proxy": _mapping(
        {
            "mode": _check_choice(KUBE_PROXY_MODES),
            "conntrack_max_per_core": _check_int_range(0, 1 << 22, "a number of entries"),
        }
    ),
    "containerd": _mapping(
        {
            "sandbox_image": _check_image,
            "registry_mirrors": _check_registry_mirrors,
            "restrict_oom_score_adj": _check_bool,
        }
    ),
    "images": _mapping(
        {
            "coredns": _check_optional(_check_image),
            "calico_kube_controllers": _check_optional(_check_image),
        }
    ),
    "paths": _mapping({"root": _check_abs_path, **dict.fromkeys(PATH_KEYS, _check_abs_path)}),
    "nodes": _check_nodes,
}


def validate(config):
    """Return every :class:`Problem` in a merged kubesalt config (empty list: valid)."""
    if not isinstance(config, dict):
        return [Problem(PILLAR_KEY, f"expected a mapping, got {_kind(config)}")]
    parsed, problems = _check_fields(config, PILLAR_KEY, SCHEMA)
    network = parsed.get("network") or {}
    nodes = parsed.get("nodes") or {}
    problems += _check_network_layout(network)
    problems += _check_node_addresses(nodes, network)
    problems += _check_role_counts(nodes)
    problems += _check_pki_against_nodes(parsed.get("pki") or {}, nodes)
    problems += _check_endpoint_in_sans(parsed.get("cluster") or {}, parsed.get("pki") or {}, nodes)
    if not problems:
        problems += [Problem(key, message) for key, message in _layout_problems(config)]
    return problems


def _layout_problems(config):
    """The BGP layout checks of kubesalt_core.calico and the apiserver proxy's, on a config whose
    fields are all valid."""
    return kubesalt_core.calico.problems(
        config, PILLAR_KEY
    ) + kubesalt_core.apiserver_proxy.problems(config, masters(config), PILLAR_KEY)


def _check_endpoint_in_sans(cluster, pki, nodes):
    """The apiserver endpoint must be a name its serving cert carries, or TLS fails."""
    endpoint = cluster.get("apiserver_endpoint")
    if not endpoint or not isinstance(nodes, dict):
        return []
    host, _ = split_endpoint(endpoint)
    masters = {
        name
        for mid, node in nodes.items()
        if "master" in ((node or {}).get("roles") or [])
        for name in (mid, str((node or {}).get("ip")))
    }
    if host in masters or host in (pki.get("apiserver_extra_sans") or []):
        return []
    return [
        Problem(
            f"{PILLAR_KEY}:cluster:apiserver_endpoint",
            f"{host!r} is neither a master's name or ip nor listed in "
            "kubesalt:pki:apiserver_extra_sans; the apiserver's certificate would not be "
            "valid for it",
        )
    ]


def _check_pki_against_nodes(pki, nodes):
    key = f"{PILLAR_KEY}:pki"
    problems = []
    leaf, renew = pki.get("leaf_days"), pki.get("renew_before_days")
    if leaf and renew and renew >= leaf:
        problems.append(
            Problem(
                f"{key}:renew_before_days",
                f"{renew} is not shorter than "
                f"leaf_days {leaf}; every run would re-issue every cert",
            )
        )
    ca_host = pki.get("ca_host")
    if ca_host is not None and nodes:
        if ca_host not in nodes:
            problems.append(
                Problem(f"{key}:ca_host", f"{ca_host!r} is not a node; expected one of the masters")
            )
        elif "master" not in ((nodes[ca_host] or {}).get("roles") or []):
            problems.append(
                Problem(f"{key}:ca_host", f"{ca_host!r} is not a master; the CA lives on a master")
            )
    return problems


def _check_network_layout(net):
    key = f"{PILLAR_KEY}:network"
    problems = []
    ranges = [(name, net.get(name)) for name in ("node_cidr", "pod_cidr", "service_cidr")]
    ranges = [(name, cidr) for name, cidr in ranges if cidr is not None]
    for i, (name_a, a) in enumerate(ranges):
        for name_b, b in ranges[i + 1 :]:
            if a.overlaps(b):
                problems.append(
                    Problem(
                        f"{key}:{name_b}",
                        f"{b} overlaps {name_a} {a}; "
                        "expected node, pod and service ranges to be disjoint",
                    )
                )
    service, dns = net.get("service_cidr"), net.get("cluster_dns_ip")
    if service is not None and service.prefixlen < MAX_SERVICE_PREFIX_V4:
        problems.append(
            Problem(
                f"{key}:service_cidr",
                f"/{service.prefixlen} is too large; "
                f"kube-apiserver expects a prefix of /{MAX_SERVICE_PREFIX_V4} "
                "or longer",
            )
        )
    if service is not None and dns is not None:
        if dns not in service:
            problems.append(
                Problem(
                    f"{key}:cluster_dns_ip",
                    f"{dns} is outside service_cidr {service}; expected an address inside it",
                )
            )
        elif dns in (service.network_address, service.broadcast_address, service[1]):
            problems.append(
                Problem(
                    f"{key}:cluster_dns_ip",
                    f"{dns} is reserved in "
                    f"{service} (network, broadcast or the kubernetes service "
                    f"{service[1]}); expected another address",
                )
            )
    return problems


def _check_node_addresses(nodes, net):
    problems, owners = [], {}
    for minion_id, node in nodes.items():
        ip = (node or {}).get("ip")
        if ip is None:
            continue
        key = f"{PILLAR_KEY}:nodes:{minion_id}:ip"
        if ip in owners:
            problems.append(
                Problem(
                    key,
                    f"duplicate node IP {ip}: already used by "
                    f"{owners[ip]!r}; expected one address per node",
                )
            )
        owners.setdefault(ip, minion_id)
        node_cidr = net.get("node_cidr")
        if node_cidr is not None:
            if ip not in node_cidr:
                problems.append(Problem(key, f"{ip} is outside node_cidr {node_cidr}"))
            elif ip in (node_cidr.network_address, node_cidr.broadcast_address):
                problems.append(
                    Problem(
                        key,
                        f"{ip} is the network or broadcast address of "
                        f"node_cidr {node_cidr}; expected a host address",
                    )
                )
        for name in ("pod_cidr", "service_cidr"):
            cidr = net.get(name)
            if cidr is not None and ip in cidr:
                problems.append(
                    Problem(
                        key,
                        f"{ip} lies inside {name} {cidr}; expected a "
                        "node address outside pod and service ranges",
                    )
                )
    return problems


def _check_role_counts(nodes):
    key = f"{PILLAR_KEY}:nodes"
    if not nodes:
        return []
    masters = sorted(i for i, n in nodes.items() if "master" in ((n or {}).get("roles") or []))
    workers = [i for i, n in nodes.items() if "worker" in ((n or {}).get("roles") or [])]
    if not masters:
        return [Problem(key, "no node has the role 'master'; expected 1, 3 or 5 masters")]
    problems = []
    if len(masters) % 2 == 0:
        problems.append(
            Problem(
                key,
                f"{len(masters)} masters ({', '.join(masters)}): an even "
                f"number of etcd members tolerates no more failures than "
                f"{len(masters) - 1}; expected an odd number",
                WARNING,
            )
        )
    if not workers:
        problems.append(
            Problem(key, "no node has the role 'worker': pods have nowhere to run", WARNING)
        )
    return problems


def errors(problems):
    """Only the problems that must stop a run."""
    return [p for p in problems if p.level == ERROR]


# --- roles and what a minion gets -------------------------------------------------------------


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
    if not pillar_present or (not roles and not errors(problems)):
        return [f"{formula}.unassigned"]
    if errors(problems):
        return [f"{formula}.validate"]
    return [f"{formula}.validate", *(f"{formula}.{role}" for role in roles)]
