"""Real BGP in the lab: the router runs the BIRD config kubesalt generates; each worker runs
Calico's confd with kubesalt's BIRD 2 templates and BIRD (calico-bird), announcing the
blocks Calico's IPAM gave the node."""

import ipaddress

from kubesalt_lab import bgp, containers, master, overview, workloads
from kubesalt_lab.system import wait_until

WORKERS = ("worker-1", "worker-2")


def _node(lab, node_id):
    return next(n for n in lab.nodes if n.id == node_id)


def _wait(what, check, timeout=30):
    return wait_until(check, timeout, interval=0.5, what=what)


def _established(lab):
    rows = bgp.sessions(lab)
    return {r[1]: r[2] for r in rows if r[0] == "router-1"}


def test_every_worker_session_to_the_router_is_established(applied):
    lab = applied

    def up():
        states = _established(lab)
        return states if states and all(s == "up" for s in states.values()) else None

    states = _wait("every session up", up)
    assert set(states) == {"node_worker_1", "node_worker_2"}
    info = {r[1]: r[3] for r in bgp.sessions(lab)}
    assert all(i.startswith("Established") for i in info.values()), info


def test_pod_routes_are_reflected_into_the_other_workers_kernel(applied):
    lab = applied
    blocks = workloads.blocks(lab)
    assert set(blocks) == set(WORKERS), blocks
    for here, there in (WORKERS, WORKERS[::-1]):
        routes = _wait(
            f"{blocks[there]} in {here}'s kernel",
            lambda here=here, there=there: (
                set(blocks[there]) <= set(bgp.kernel_routes(lab, _node(lab, here)))
            ),
        )
        assert routes
        # Its own blocks stay local (blackholes in BIRD, never installed from BGP).
        assert not set(blocks[here]) & set(bgp.kernel_routes(lab, _node(lab, here)))


def test_a_worker_that_leaves_has_its_routes_withdrawn(applied):
    lab = applied
    worker_1, worker_2 = (_node(lab, w) for w in WORKERS)
    (block_2, *_) = workloads.blocks(lab)["worker-2"]
    _wait("worker-2's block on worker-1", lambda: block_2 in bgp.kernel_routes(lab, worker_1))
    containers.inside(lab, worker_2, ["systemctl", "stop", "calico-bird.service"])
    try:
        _wait(
            "worker-2's block withdrawn from worker-1",
            lambda: block_2 not in bgp.kernel_routes(lab, worker_1),
        )
        assert _established(lab)["node_worker_2"] != "up"
    finally:
        containers.inside(lab, worker_2, ["systemctl", "start", "calico-bird.service"])
    _wait("worker-2's block back", lambda: block_2 in bgp.kernel_routes(lab, worker_1))


def _bird_pid(lab):
    router = _node(lab, "router-1")
    out = containers.inside(lab, router, ["systemctl", "show", "-p", "MainPID", "bird.service"])
    return out.stdout.strip().split("=")[1]


def test_a_config_change_reloads_bird_instead_of_restarting_it(applied):
    lab = applied
    before = _bird_pid(lab)
    master.override_pillar(lab, {"network:bgp:advertise_service_cluster_ips": True})
    try:
        ret = master.run_salt(lab, "router-1", "state.apply", timeout=300)["router-1"]
        changed = {s["__id__"] for s in ret.values() if s["changes"]}
        assert "kubesalt-config-/etc/bird/bird.conf-managed" in changed
        assert all(s["result"] for s in ret.values()), ret
        assert _bird_pid(lab) == before
        config = containers.inside(lab, _node(lab, "router-1"), ["cat", "/etc/bird/bird.conf"])
        assert "198.18.16.0/20{20,32}" in config.stdout
        assert all(s == "up" for s in _established(lab).values())
    finally:
        master.override_pillar(lab, {})
        master.run_salt(lab, "router-1", "state.apply", timeout=300)


def _fetch_from_router(lab, address):
    """GET http://address/ from the router host (its own python3): the page, or None."""
    script = (
        "import sys, urllib.request\n"
        "try:\n"
        f"    print(urllib.request.urlopen('http://{address}/', timeout=3).read().decode())\n"
        "except OSError as err:\n"
        "    sys.exit(str(err))\n"
    )
    proc = containers.inside(lab, _node(lab, "router-1"), ["python3", "-c", script], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_an_announced_service_cluster_ip_is_reached_from_the_router_over_every_worker(applied):
    lab = applied
    service_range = "198.18.16.0/20"  # network:service_cidr of the lab's pillar
    workloads.apply(
        lab, workloads.http_server("announced", replicas=2), workloads.service("announced")
    )
    try:
        pods = workloads.wait_ready(lab, "app=announced", 2)
        cluster_ip = workloads.get(lab, "service", "announced")["spec"]["clusterIP"]
        worker_ips = sorted(n.ip for n in lab.nodes if n.id in WORKERS)
        # Not announced by default: the router has no route to it.
        assert service_range not in bgp.kernel_paths(lab, _node(lab, "router-1"))
        master.override_pillar(lab, {"network:bgp:advertise_service_cluster_ips": True})
        ret = master.run_salt(lab, "master-1,router-1", "state.apply", list_target=True)
        for node_id in ("master-1", "router-1"):
            assert all(s["result"] for s in ret[node_id].values()), ret[node_id]
        # Every worker's BIRD announces the range (confd's /staticroutes, from the
        # BGPConfiguration); the router keeps one path over each.
        paths = _wait(
            "the service range over both workers in the router's kernel",
            lambda: (
                sorted(bgp.kernel_paths(lab, _node(lab, "router-1")).get(service_range, []))
                == worker_ips
            ),
            timeout=60,
        )
        assert paths
        served = {_fetch_from_router(lab, cluster_ip) for _ in range(12)}
        assert served <= {p["name"] for p in pods} and served, served
    finally:
        master.override_pillar(lab, {})
        master.run_salt(lab, "master-1,router-1", "state.apply", list_target=True)
        workloads.delete(lab, "deployment/announced", "service/announced")
    _wait(
        "the service range withdrawn",
        lambda: service_range not in bgp.kernel_paths(lab, _node(lab, "router-1")),
        timeout=60,
    )


def _load_balancer_address(lab, name):
    ingress = workloads.get(lab, "service", name).get("status", {}).get("loadBalancer", {})
    addresses = [i["ip"] for i in ingress.get("ingress", []) if i.get("ip")]
    return addresses[0] if addresses else None


def _paths_on_router(lab, prefix):
    return sorted(bgp.kernel_paths(lab, _node(lab, "router-1")).get(prefix, []))


def test_a_load_balancer_address_is_announced_from_the_workers_with_its_pods(applied):
    """A Service of type LoadBalancer gets an address from network:load_balancer_cidr
    (Calico's IPAM, through kube-controllers); with externalTrafficPolicy Local each worker
    that runs one of its pods announces it (confd), and the router spreads flows over both.
    (A worker powered off under such an address: tests/lab/test_lab_ingress.py, with the
    ingress's own Service.)"""
    lab = applied
    pool = ipaddress.ip_network("198.18.32.0/24")  # network:load_balancer_cidr of the lab
    worker_ip = {n.id: n.ip for n in lab.nodes if n.id in WORKERS}
    service = workloads.service("balanced")
    service["spec"].update({"type": "LoadBalancer", "externalTrafficPolicy": "Local"})
    workloads.apply(lab, workloads.http_server("balanced", replicas=2), service)
    try:
        pods = workloads.wait_ready(lab, "app=balanced", 2)
        address = _wait(
            "an address from the pool", lambda: _load_balancer_address(lab, "balanced"), 60
        )
        assert ipaddress.ip_address(address) in pool, address
        route = address  # a host route, as `ip route` prints it
        _wait(
            "the address over both workers in the router's kernel",
            lambda: _paths_on_router(lab, route) == sorted(worker_ip.values()),
            timeout=60,
        )
        # The router spreads flows over both paths by ports (kubesalt's router sysctl), and
        # each worker answers from its own pod (policy Local).
        served = {_fetch_from_router(lab, address) for _ in range(24)}
        assert served == {p["name"] for p in pods}, served
    finally:
        workloads.delete(lab, "deployment/balanced", "service/balanced")
    _wait("the address withdrawn", lambda: _paths_on_router(lab, route) == [], timeout=60)


def test_status_shows_the_bgp_sessions(applied):
    tables = overview.status_tables(overview.status(applied))
    assert "bgp session" in tables and "node_worker_1" in tables
