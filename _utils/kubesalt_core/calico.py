"""Calico's BGP side and the routers' BIRD 2 config, built from one pillar.

Workers and routers form one AS (iBGP). The routers are route reflectors for the nodes;
the node-to-node mesh is off. From the cluster config this builds:

- the BGPConfiguration ``default`` with ``asNumber`` always set (left to Calico's default,
  a changed cluster AS would silently turn iBGP into eBGP), ``nodeToNodeMeshEnabled:
  false``, and ``serviceClusterIPs`` when ``network:bgp:advertise_service_cluster_ips``;
- one BGPPeer per router (peerIP, asNumber = the cluster AS, for every node);
- the IPPools (``network:ip_pools``, default one pool over ``network:pod_cidr``), with
  ipipMode and vxlanMode Never: BGP routes pod addresses natively;
- the routers' ``bird.conf``.

Each node's own BGP address is not among the resources: calico-node writes it on the node's
Kubernetes Node (from its ``IP``) once the kubelet has registered it. Applying a Node here
would create a Node that no kubelet runs (seen in the lab: ``Unknown`` workers).

:func:`problems` is the semantic check (a peer in another AS without ``ebgp``, duplicate
router ids, a router sharing no subnet with the nodes); ``kubesalt_core.pillar_schema.validate``
runs it.
No Salt dunders and no I/O here.
"""

import ipaddress

CALICO_API = "crd.projectcalico.org/v1"
DEFAULT_BLOCK_SIZE = 26


def _roles(node):
    return (node or {}).get("roles") or []


def routers(config):
    """``[(minion id, node)]`` of the routers, by minion id."""
    return sorted((i, n) for i, n in config["nodes"].items() if "router" in _roles(n))


def bgp_nodes(config):
    """The nodes that speak BGP to the routers: every worker (calico-node runs there)."""
    return sorted((i, n) for i, n in config["nodes"].items() if "worker" in _roles(n))


def bgp_settings(config):
    return (config.get("network") or {}).get("bgp") or {}


def router_as(config, node):
    return int(node.get("as_number") or config["network"]["as_number"])


def router_id(node):
    return str(node.get("router_id") or node["ip"])


def cluster_id(config):
    """The route-reflector cluster id the routers share: pillar, else the first router's id."""
    chosen = bgp_settings(config).get("route_reflector_cluster_id")
    if chosen:
        return str(chosen)
    found = routers(config)
    return router_id(found[0][1]) if found else None


def ip_pools(config):
    """``[{name, cidr, block_size, nat_outgoing}]``: pillar, or one pool over pod_cidr."""
    pools = (config.get("network") or {}).get("ip_pools")
    if pools:
        return [
            {
                "name": p["name"],
                "cidr": str(p["cidr"]),
                "block_size": int(p.get("block_size", DEFAULT_BLOCK_SIZE)),
                "nat_outgoing": bool(p.get("nat_outgoing", True)),
            }
            for p in pools
        ]
    return [
        {
            "name": "default-ipv4",
            "cidr": str(config["network"]["pod_cidr"]),
            "block_size": DEFAULT_BLOCK_SIZE,
            "nat_outgoing": True,
        }
    ]


def load_balancer_cidr(config):
    """The pool Services of type LoadBalancer get their addresses from, or None."""
    cidr = (config.get("network") or {}).get("load_balancer_cidr")
    return str(cidr) if cidr else None


# --- the Calico resources ------------------------------------------------------------------


def bgp_configuration(config):
    spec = {
        "asNumber": int(config["network"]["as_number"]),
        "nodeToNodeMeshEnabled": False,
        "logSeverityScreen": "Info",
    }
    if bgp_settings(config).get("advertise_service_cluster_ips"):
        spec["serviceClusterIPs"] = [{"cidr": str(config["network"]["service_cidr"])}]
    lb = load_balancer_cidr(config)
    if lb:
        # Every worker announces the range (confd's /staticroutes); kube-proxy on the worker
        # a packet reaches takes it to a pod.
        spec["serviceLoadBalancerIPs"] = [{"cidr": lb}]
    return {
        "apiVersion": CALICO_API,
        "kind": "BGPConfiguration",
        "metadata": {"name": "default"},
        "spec": spec,
    }


def bgp_peers(config):
    return [
        {
            "apiVersion": CALICO_API,
            "kind": "BGPPeer",
            "metadata": {"name": f"router-{name}"},
            "spec": {
                "peerIP": str(node["ip"]),
                "asNumber": router_as(config, node),
                "nodeSelector": "all()",
            },
        }
        for name, node in routers(config)
    ]


def _ip_pool(name, cidr, block_size, nat_outgoing, **extra):
    """An IPPool as kubesalt applies it: no encapsulation (BGP routes it natively), every
    node, and ``assignmentMode`` set, which Calico's API server would default: applied as a
    CRD object, a pool without it crashes kube-controllers' LoadBalancer controller (a nil
    dereference in Calico 3.31, seen in the lab)."""
    return {
        "apiVersion": CALICO_API,
        "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {
            "cidr": cidr,
            "blockSize": block_size,
            "ipipMode": "Never",
            "vxlanMode": "Never",
            "natOutgoing": nat_outgoing,
            "nodeSelector": "all()",
            **extra,
            "assignmentMode": "Automatic",
        },
    }


def ip_pool_objects(config):
    pools = [
        _ip_pool(p["name"], p["cidr"], p["block_size"], p["nat_outgoing"]) for p in ip_pools(config)
    ]
    lb = load_balancer_cidr(config)
    if lb:
        # Calico's validation of a LoadBalancer pool (kubesalt applies past it) also asks
        # for a block no larger than the pool.
        block = max(DEFAULT_BLOCK_SIZE, ipaddress.ip_network(lb).prefixlen)
        pools.append(_ip_pool("load-balancer", lb, block, False, allowedUses=["LoadBalancer"]))
    return pools


def resources(config):
    """Everything applied for BGP, in order."""
    return [
        bgp_configuration(config),
        *bgp_peers(config),
        *ip_pool_objects(config),
    ]


# --- the checks -----------------------------------------------------------------------------


def problems(config, key="kubesalt"):
    """``[(key, message)]`` for a BGP layout that cannot work."""
    found = []
    cluster_as = int(config["network"]["as_number"])
    ebgp = bool(bgp_settings(config).get("ebgp"))
    ids = {}
    node_net = ipaddress.ip_network(str(config["network"]["node_cidr"]))
    for name, node in routers(config):
        node_key = f"{key}:nodes:{name}"
        peer_as = router_as(config, node)
        if peer_as != cluster_as and not ebgp:
            found.append(
                (
                    f"{node_key}:as_number",
                    f"{peer_as} is not the cluster AS {cluster_as}; workers and routers form "
                    "one AS (set network:bgp:ebgp: true to peer across AS on purpose)",
                )
            )
        rid = router_id(node)
        if rid in ids:
            found.append((f"{node_key}:router_id", f"{rid} is already the router id of {ids[rid]}"))
        ids.setdefault(rid, name)
        if ipaddress.ip_address(str(node["ip"])) not in node_net:
            found.append(
                (
                    f"{node_key}:ip",
                    f"{node['ip']} shares no subnet with the nodes ({node_net}); "
                    "BGP sessions to the workers need a directly connected router",
                )
            )
    pod = ipaddress.ip_network(str(config["network"]["pod_cidr"]))
    for i, pool in enumerate(ip_pools(config)):
        pool_key = f"{key}:network:ip_pools:{i}"
        cidr = ipaddress.ip_network(pool["cidr"])
        if not cidr.subnet_of(pod):
            found.append((f"{pool_key}:cidr", f"{cidr} is not inside network:pod_cidr {pod}"))
        if not cidr.prefixlen <= pool["block_size"] <= 32:
            found.append(
                (
                    f"{pool_key}:block_size",
                    f"{pool['block_size']} is not between the pool's prefix /{cidr.prefixlen} "
                    "and 32",
                )
            )
    return found


# --- the routers' BIRD 2 config ---------------------------------------------------------------


def _pod_prefix_set(config):
    return ", ".join(
        f"{pool['cidr']}{{{ipaddress.ip_network(pool['cidr']).prefixlen},32}}"
        for pool in ip_pools(config)
    )


def bird_config(config, router):
    """``bird.conf`` for router ``router``: iBGP to every worker as a route-reflector client,
    graceful restart, filters that take only pod blocks (and service IPs) from the nodes and
    never a default route."""
    node = config["nodes"][router]
    settings = bgp_settings(config)
    local_as = router_as(config, node)
    service = str(config["network"]["service_cidr"])
    service_len = ipaddress.ip_network(service).prefixlen
    lb = load_balancer_cidr(config)
    fast = settings.get("fast_timers")
    lines = [
        "# Managed by kubesalt: edits are replaced on the next state run.",
        f"# Route reflector {router} of cluster {config['cluster']['name']}, AS {local_as}.",
        f"router id {router_id(node)};",
        "log syslog all;",
        "",
        "protocol device {",
        "  scan time 10;",
        "}",
        "",
        "# Routes learned from the nodes go to the kernel; nothing else is exported. An",
        "# address several nodes announce (a service range) gets one path over each of them.",
        "protocol kernel {",
        "  ipv4 {",
        "    import none;",
        "    export where source = RTS_BGP;",
        "  };",
        "  merge paths on;",
        "}",
        "",
        "# From the nodes: pod blocks inside the IP pools"
        + (", service IPs" if settings.get("advertise_service_cluster_ips") else "")
        + (", load balancer addresses" if lb else "")
        + "; never a default route.",
        "filter kubesalt_from_nodes {",
        "  if net = 0.0.0.0/0 then reject;",
        f"  if net ~ [ {_pod_prefix_set(config)} ] then accept;",
    ]
    if settings.get("advertise_service_cluster_ips"):
        lines.append(f"  if net ~ [ {service}{{{service_len},32}} ] then accept;")
    if lb:
        lb_len = ipaddress.ip_network(lb).prefixlen
        lines.append(f"  if net ~ [ {lb}{{{lb_len},32}} ] then accept;")
    lines += [
        "  reject;",
        "}",
        "",
        "# To the nodes: the pod routes of the other nodes (reflected), never a default route.",
        "filter kubesalt_to_nodes {",
        "  if net = 0.0.0.0/0 then reject;",
        f"  if net ~ [ {_pod_prefix_set(config)} ] then accept;",
        "  reject;",
        "}",
        "",
        "template bgp kubesalt_node {",
        f"  local as {local_as};",
        # The nodes share the routers' subnet (checked): a direct session, next hops
        # resolved on the interface.
        "  direct;",
        "  rr client;",
        f"  rr cluster id {cluster_id(config)};",
        "  graceful restart on;",
    ]
    if fast:
        # The lab's timers: Established within a second, no minute-long idle after a loss.
        lines += [
            "  connect delay time 1;",
            "  connect retry time 2;",
            "  hold time 3;",
            "  keepalive time 1;",
            "  error wait time 1, 5;",
        ]
    lines += [
        "  ipv4 {",
        "    gateway direct;",
        "    import filter kubesalt_from_nodes;",
        "    export filter kubesalt_to_nodes;",
        "  };",
        "}",
    ]
    for name, peer in bgp_nodes(config):
        protocol = "node_" + "".join(c if c.isalnum() else "_" for c in name)
        lines += [
            "",
            f"protocol bgp {protocol} from kubesalt_node {{",
            f'  description "{name}";',
            f"  neighbor {peer['ip']} as {int(config['network']['as_number'])};",
            "}",
        ]
    return "\n".join(lines) + "\n"
