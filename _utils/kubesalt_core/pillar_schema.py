"""What a valid ``kubesalt`` pillar is: the schema (:data:`SCHEMA`, a check per key) and
the checks across keys (addresses inside their networks, role counts, the PKI against the
nodes, the BGP layout). :func:`validate` returns every problem, never only the first.

No Salt dunders and no I/O here.
"""

import difflib
import re

import kubesalt_core.apiserver_proxy
import kubesalt_core.calico
import kubesalt_core.pillar
import kubesalt_core.pillar_day2
import kubesalt_core.pillar_security
from kubesalt_core import pillar_checks as check

_ARTIFACT_FIELDS = {
    "url": {"url": None, "sha256": None, "members": None},
    "package": {"package": None},
    "path": {"path": None},
}


def _check_artifact(value, key):
    if not isinstance(value, dict):
        return None, [
            check.Problem(key, f"expected a mapping with 'source', got {check.kind_of(value)}")
        ]
    source = value.get("source")
    if source not in kubesalt_core.pillar.ARTIFACT_SOURCES:
        choices = ", ".join(kubesalt_core.pillar.ARTIFACT_SOURCES)
        return None, [check.Problem(f"{key}:source", f"{source!r} is not one of: {choices}")]
    allowed = {"source", *_ARTIFACT_FIELDS[source]}
    problems = [check.unknown_key(key, name, allowed) for name in value if name not in allowed]
    if source == "url":
        url = value.get("url")
        if not isinstance(url, str) or not re.match(r"^(https?|file)://", url):
            problems.append(
                check.Problem(f"{key}:url", f"{url!r} is not an http(s):// or file:// URL")
            )
        sha = value.get("sha256")
        if not isinstance(sha, str) or not check.SHA256_RE.match(sha):
            expected = "a sha256 (64 lowercase hex digits, quoted in YAML)"
            problems.append(check.Problem(f"{key}:sha256", f"{sha!r} is not {expected}"))
        members = value.get("members")
        if members is not None and not (
            isinstance(members, dict)
            and all(isinstance(k, str) and isinstance(v, str) and v for k, v in members.items())
        ):
            expected = "a mapping of binary name to its path inside the archive"
            problems.append(check.Problem(f"{key}:members", f"expected {expected}"))
    elif source == "package":
        if not isinstance(value.get("package"), str) or not value.get("package"):
            problems += check.missing(f"{key}:package", "the name of a distribution package")
    else:
        problems += check.abs_path(value.get("path"), f"{key}:path")[1]
    return value, problems


def _check_artifacts(value, key):
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        expected = "a mapping of component to source"
        return None, [check.Problem(key, f"expected {expected}, got {check.kind_of(value)}")]
    problems = []
    for name, spec in value.items():
        if name not in kubesalt_core.pillar.ARTIFACT_NAMES:
            known = ", ".join(kubesalt_core.pillar.ARTIFACT_NAMES)
            problems.append(
                check.Problem(f"{key}:{name}", f"unknown artifact; expected one of: {known}")
            )
            continue
        problems += _check_artifact(spec, f"{key}:{name}")[1]
    return value, problems


def _check_days(value, key):
    expected = "a whole number of days, at least 1"
    if value is None:
        return None, check.missing(key, expected)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None, [check.Problem(key, f"{value!r} is not {expected}")]
    return value, []


def _check_key_type(value, key):
    if value not in kubesalt_core.pillar.KEY_TYPES:
        return None, [
            check.Problem(
                key, f"{value!r} is not one of: {', '.join(kubesalt_core.pillar.KEY_TYPES)}"
            )
        ]
    return value, []


def _check_extra_sans(value, key):
    if value is None:
        return [], []
    if not isinstance(value, list):
        return None, [
            check.Problem(
                key, f"expected a list of DNS names or IP addresses, got {check.kind_of(value)}"
            )
        ]
    problems = []
    for index, san in enumerate(value):
        if not (kubesalt_core.pillar.is_ip(san) or check.is_dns_name(san)):
            problems.append(
                check.Problem(f"{key}:{index}", f"{san!r} is neither a DNS name nor an IP address")
            )
    return value, problems


def _check_wait_seconds(value, key):
    expected = "a whole number of seconds from 0 to 600"
    if value is None:
        return None, check.missing(key, expected)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 600:
        return None, [check.Problem(key, f"{value!r} is not {expected}")]
    return value, []


def _check_ca_host(value, key):
    """A node's minion id, or null (the first master); which node is checked below."""
    if value is not None and not isinstance(value, str):
        return None, [check.Problem(key, f"{value!r} is not a node's minion id")]
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
        return None, check.missing(key, expected)
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 10
        or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 3600 for v in value)
    ):
        return None, [check.Problem(key, f"{value!r} is not {expected}")]
    return value, []


_HEAL_FIELDS = {
    "backoff_seconds": _check_backoff,
    "budget_attempts": check.int_range(1, 100, "a number of repairs"),
    "window_seconds": check.int_range(60, 86400, "a number of seconds"),
    "hold_seconds": check.int_range(1, 600, "a number of seconds"),
    "restarts_before_reapply": check.int_range(1, 10, "a number of restarts"),
}


def _check_roles(value, key):
    expected = "a list of roles from: " + ", ".join(kubesalt_core.pillar.ROLES)
    if value is None:
        return None, check.missing(key, expected)
    if not isinstance(value, list):
        return None, [
            check.Problem(key, f"expected {expected}, got {check.kind_of(value)} {value!r}")
        ]
    if not value:
        return None, [check.Problem(key, f"empty; expected {expected}")]
    problems = []
    for index, role in enumerate(value):
        if not isinstance(role, str) or role not in kubesalt_core.pillar.ROLES:
            hint = difflib.get_close_matches(str(role), kubesalt_core.pillar.ROLES, n=1)
            suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.append(
                check.Problem(
                    f"{key}:{index}",
                    f"unknown role {role!r}; expected one of: "
                    f"{', '.join(kubesalt_core.pillar.ROLES)}{suffix}",
                )
            )
        elif role in value[:index]:
            problems.append(check.Problem(f"{key}:{index}", f"role {role!r} is listed twice"))
    if {"router", "worker"} <= {r for r in value if isinstance(r, str)}:
        problems.append(
            check.Problem(
                key,
                "roles 'router' and 'worker' cannot share a host: both run a BGP "
                "speaker on port 179; put the route reflector on its own host",
            )
        )
    return (value if not problems else None), problems


# as_number and router_id matter on routers (BGP); the others ignore them.
_NODE_FIELDS = {
    "roles": _check_roles,
    "ip": check.ip,
    "as_number": check.optional(check.as_number),
    "router_id": check.optional(check.ip),
}


def _node_name_problem(minion_id, key):
    """Minion ids become Kubernetes node names (RFC 1123 subdomains)."""
    if check.is_dns_name(minion_id):
        return []
    return [
        check.Problem(
            key,
            f"minion id {minion_id!r} is not a valid Kubernetes node name; expected "
            "lowercase letters, digits, '-' and '.' (RFC 1123)",
        )
    ]


def _check_nodes(value, key):
    """Check ``nodes``: {minion id: node}; returns ({id: parsed node}, [Problem])."""
    if value is None or value == {}:
        return {}, [
            check.Problem(
                key, "no nodes; expected a mapping of minion id to {roles: [...], ip: ...}"
            )
        ]
    if not isinstance(value, dict):
        return None, [
            check.Problem(
                key, f"expected a mapping of minion id to node, got {check.kind_of(value)}"
            )
        ]
    problems, parsed, seen = [], {}, {}
    for minion_id, node in value.items():
        if minion_id is None or not str(minion_id).strip():
            problems.append(
                check.Problem(
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
                check.Problem(
                    node_key,
                    f"duplicate minion id: {minion_id!r} names the "
                    f"same node as {seen[canonical]!r}",
                )
            )
        seen.setdefault(canonical, minion_id)
        parsed[minion_id], found = check.fields_of(node, node_key, _NODE_FIELDS)
        problems += found
    return parsed, problems


SCHEMA = {
    "cluster": check.mapping(
        {
            "name": check.dns_label,
            "domain": check.dns_domain,
            "apiserver_endpoint": check.optional(check.endpoint),
        }
    ),
    "network": check.mapping(
        {
            "as_number": check.as_number,
            "node_cidr": check.cidr,
            "pod_cidr": check.cidr,
            "service_cidr": check.cidr,
            "cluster_dns_ip": check.ip,
            "dns_upstream": check.dns_upstream,
            "bgp": check.mapping(
                {
                    "advertise_service_cluster_ips": check.boolean,
                    "ebgp": check.boolean,
                    "fast_timers": check.boolean,
                    "route_reflector_cluster_id": check.optional(check.ip),
                }
            ),
            "ip_pools": check.ip_pools,
            "load_balancer_cidr": check.optional(check.cidr),
        }
    ),
    "versions": check.mapping(dict.fromkeys(kubesalt_core.pillar.COMPONENTS, check.version)),
    "artifacts": _check_artifacts,
    "pki": check.mapping(_PKI_FIELDS),
    "heal": check.mapping(_HEAL_FIELDS),
    "ingress": check.mapping(
        {
            "controller": check.choice(("nginx", "ingress-nginx")),
            "namespace": check.dns_label,
            "class_name": check.dns_label,
            "image": check.optional(check.image),
            "http_node_port": check.node_port_number,
            "https_node_port": check.node_port_number,
            "address": check.optional(check.ip),
            "config": check.string_map,
            "default_tls_secret": check.optional(check.namespaced_name),
        }
    ),
    **kubesalt_core.pillar_security.SCHEMA,
    **kubesalt_core.pillar_day2.SCHEMA,
    "apiserver_proxy": check.mapping(
        {
            "enabled": check.optional(check.boolean),
            "port": check.int_range(1, 65535, "a TCP port"),
            "drain": check.minion_ids,
        }
    ),
    "kube_proxy": check.mapping(
        {
            "mode": check.choice(kubesalt_core.pillar.KUBE_PROXY_MODES),
            "conntrack_max_per_core": check.int_range(0, 1 << 22, "a number of entries"),
        }
    ),
    "containerd": check.mapping(
        {
            "sandbox_image": check.image,
            "registry_mirrors": check.registry_mirrors,
            "restrict_oom_score_adj": check.boolean,
        }
    ),
    "images": check.mapping(
        {
            "coredns": check.optional(check.image),
            "calico_kube_controllers": check.optional(check.image),
        }
    ),
    "paths": check.mapping(
        {"root": check.abs_path, **dict.fromkeys(kubesalt_core.pillar.PATH_KEYS, check.abs_path)}
    ),
    "nodes": _check_nodes,
}


def validate(config):
    """Return every :class:`Problem` in a merged kubesalt config (empty list: valid)."""
    if not isinstance(config, dict):
        return [
            check.Problem(
                kubesalt_core.pillar.PILLAR_KEY, f"expected a mapping, got {check.kind_of(config)}"
            )
        ]
    parsed, problems = check.fields_of(config, kubesalt_core.pillar.PILLAR_KEY, SCHEMA)
    network = parsed.get("network") or {}
    nodes = parsed.get("nodes") or {}
    problems += _check_network_layout(network)
    problems += _check_node_addresses(nodes, network)
    problems += _check_role_counts(nodes)
    problems += _check_pki_against_nodes(parsed.get("pki") or {}, nodes)
    problems += _check_endpoint_in_sans(parsed.get("cluster") or {}, parsed.get("pki") or {}, nodes)
    problems += kubesalt_core.pillar_day2.problems(parsed)
    problems += _check_ingress(parsed.get("ingress") or {}, network)
    if not check.errors(problems):
        problems += [check.Problem(key, message) for key, message in _layout_problems(config)]
    return problems


def _layout_problems(config):
    """The BGP layout checks of kubesalt_core.calico and the apiserver proxy's, on a config whose
    fields are all valid."""
    return kubesalt_core.calico.problems(
        config, kubesalt_core.pillar.PILLAR_KEY
    ) + kubesalt_core.apiserver_proxy.problems(
        config, kubesalt_core.pillar.masters(config), kubesalt_core.pillar.PILLAR_KEY
    )


def _check_endpoint_in_sans(cluster, pki, nodes):
    """The apiserver endpoint must be a name its serving cert carries, or TLS fails."""
    endpoint = cluster.get("apiserver_endpoint")
    if not endpoint or not isinstance(nodes, dict):
        return []
    host, _ = kubesalt_core.pillar.split_endpoint(endpoint)
    masters = {
        name
        for mid, node in nodes.items()
        if "master" in ((node or {}).get("roles") or [])
        for name in (mid, str((node or {}).get("ip")))
    }
    if host in masters or host in (pki.get("apiserver_extra_sans") or []):
        return []
    return [
        check.Problem(
            f"{kubesalt_core.pillar.PILLAR_KEY}:cluster:apiserver_endpoint",
            f"{host!r} is neither a master's name or ip nor listed in "
            "kubesalt:pki:apiserver_extra_sans; the apiserver's certificate would not be "
            "valid for it",
        )
    ]


def _check_pki_against_nodes(pki, nodes):
    key = f"{kubesalt_core.pillar.PILLAR_KEY}:pki"
    problems = []
    leaf, renew = pki.get("leaf_days"), pki.get("renew_before_days")
    if leaf and renew and renew >= leaf:
        problems.append(
            check.Problem(
                f"{key}:renew_before_days",
                f"{renew} is not shorter than "
                f"leaf_days {leaf}; every run would re-issue every cert",
            )
        )
    ca_host = pki.get("ca_host")
    if ca_host is not None and nodes:
        if ca_host not in nodes:
            problems.append(
                check.Problem(
                    f"{key}:ca_host", f"{ca_host!r} is not a node; expected one of the masters"
                )
            )
        elif "master" not in ((nodes[ca_host] or {}).get("roles") or []):
            problems.append(
                check.Problem(
                    f"{key}:ca_host", f"{ca_host!r} is not a master; the CA lives on a master"
                )
            )
    return problems


def _check_network_layout(net):
    key = f"{kubesalt_core.pillar.PILLAR_KEY}:network"
    problems = []
    names = ("node_cidr", "pod_cidr", "service_cidr", "load_balancer_cidr")
    ranges = [(name, net.get(name)) for name in names]
    ranges = [(name, cidr) for name, cidr in ranges if cidr is not None]
    for i, (name_a, a) in enumerate(ranges):
        for name_b, b in ranges[i + 1 :]:
            if a.overlaps(b):
                problems.append(
                    check.Problem(
                        f"{key}:{name_b}",
                        f"{b} overlaps {name_a} {a}; "
                        "expected node, pod, service and load balancer ranges to be "
                        "disjoint",
                    )
                )
    service, dns = net.get("service_cidr"), net.get("cluster_dns_ip")
    if service is not None and service.prefixlen < kubesalt_core.pillar.MAX_SERVICE_PREFIX_V4:
        problems.append(
            check.Problem(
                f"{key}:service_cidr",
                f"/{service.prefixlen} is too large; "
                f"kube-apiserver expects a prefix of /{kubesalt_core.pillar.MAX_SERVICE_PREFIX_V4} "
                "or longer",
            )
        )
    if service is not None and dns is not None:
        if dns not in service:
            problems.append(
                check.Problem(
                    f"{key}:cluster_dns_ip",
                    f"{dns} is outside service_cidr {service}; expected an address inside it",
                )
            )
        elif dns in (service.network_address, service.broadcast_address, service[1]):
            problems.append(
                check.Problem(
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
        key = f"{kubesalt_core.pillar.PILLAR_KEY}:nodes:{minion_id}:ip"
        if ip in owners:
            problems.append(
                check.Problem(
                    key,
                    f"duplicate node IP {ip}: already used by "
                    f"{owners[ip]!r}; expected one address per node",
                )
            )
        owners.setdefault(ip, minion_id)
        node_cidr = net.get("node_cidr")
        if node_cidr is not None:
            if ip not in node_cidr:
                problems.append(check.Problem(key, f"{ip} is outside node_cidr {node_cidr}"))
            elif ip in (node_cidr.network_address, node_cidr.broadcast_address):
                problems.append(
                    check.Problem(
                        key,
                        f"{ip} is the network or broadcast address of "
                        f"node_cidr {node_cidr}; expected a host address",
                    )
                )
        for name in ("pod_cidr", "service_cidr"):
            cidr = net.get(name)
            if cidr is not None and ip in cidr:
                problems.append(
                    check.Problem(
                        key,
                        f"{ip} lies inside {name} {cidr}; expected a "
                        "node address outside pod and service ranges",
                    )
                )
    return problems


def _check_ingress(ingress, net):
    key = f"{kubesalt_core.pillar.PILLAR_KEY}:ingress"
    problems = []
    http, https = ingress.get("http_node_port"), ingress.get("https_node_port")
    if http is not None and http == https:
        problems.append(
            check.Problem(
                f"{key}:https_node_port",
                f"{https} is also http_node_port; expected two different NodePorts",
            )
        )
    address, pool = ingress.get("address"), net.get("load_balancer_cidr")
    if address is None:
        return problems
    if pool is None:
        problems.append(
            check.Problem(
                f"{key}:address",
                f"{address} needs network:load_balancer_cidr, the pool it comes from; "
                "expected that set too, or no address",
            )
        )
    elif address not in pool or address in (pool.network_address, pool.broadcast_address):
        problems.append(
            check.Problem(
                f"{key}:address",
                f"{address} is not a host address of network:load_balancer_cidr {pool}; "
                "expected an address inside it",
            )
        )
    return problems


def _check_role_counts(nodes):
    key = f"{kubesalt_core.pillar.PILLAR_KEY}:nodes"
    if not nodes:
        return []
    masters = sorted(i for i, n in nodes.items() if "master" in ((n or {}).get("roles") or []))
    workers = [i for i, n in nodes.items() if "worker" in ((n or {}).get("roles") or [])]
    if not masters:
        return [check.Problem(key, "no node has the role 'master'; expected 1, 3 or 5 masters")]
    problems = []
    if len(masters) % 2 == 0:
        problems.append(
            check.Problem(
                key,
                f"{len(masters)} masters ({', '.join(masters)}): an even "
                f"number of etcd members tolerates no more failures than "
                f"{len(masters) - 1}; expected an odd number",
                check.WARNING,
            )
        )
    if not workers:
        problems.append(
            check.Problem(
                key, "no node has the role 'worker': pods have nowhere to run", check.WARNING
            )
        )
    return problems
