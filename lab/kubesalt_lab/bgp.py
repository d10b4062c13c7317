"""The lab's BGP as the routers and the workers' BIRD report it.

The routers run kubesalt's ``bird.conf``; each worker runs Calico (calico-confd rendering
BIRD 2's config from the datastore with kubesalt's templates, BIRD as ``calico-bird``).
"""

import time

from kubesalt_lab import containers

ROUTER_SOCKET = "/run/bird/bird.ctl"


def wait_established(lab, progress, timeout=60):
    """Wait until the routers report every session Established; returns the sessions that
    are not (empty when all are up)."""
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
    """The routers' BGP sessions as their BIRD reports them: [[router, session, state, info]]."""
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
    return sorted(kernel_paths(lab, node))


def kernel_paths(lab, node):
    """The BGP routes in ``node``'s kernel table: {prefix: [next hop, ...]} (several for a
    route with one path over each of several nodes)."""
    out = containers.inside(lab, node, ["ip", "-4", "route", "show", "proto", "bird"]).stdout
    return parse_routes(out)


def parse_routes(text):
    """``ip route show`` output as {prefix: [next hop, ...]}: a multipath route is its
    prefix line followed by indented ``nexthop via`` lines."""
    routes = {}
    prefix = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if not line[0].isspace():
            prefix = words[0]
            routes[prefix] = []
        if prefix is not None and "via" in words:
            routes[prefix].append(words[words.index("via") + 1])
    return routes
