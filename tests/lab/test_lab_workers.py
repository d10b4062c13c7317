"""Real workers: containerd, kubelet, kube-proxy, calico-node (felix, confd) and BIRD run on
both lab workers; the nodes turn Ready; pods get addresses from Calico's pool and reach each
other across the workers by the routes the router learnt over BGP (no encapsulation);
Services answer by ClusterIP and by name (kube-proxy, CoreDNS); kubectl logs, exec and
port-forward go through the apiservers to the kubelets; the router's BIRD comes back by
itself; a worker's BIRD or kubelet that systemd gave up on is repaired by kubesalt's healing.
"""

import ipaddress
import json
import time

import pytest

import kubesalt_core.components
from kubesalt_lab import bgp, containers, heal, master, overview, workloads
from kubesalt_lab.system import wait_until

WORKERS = ("worker-1", "worker-2")
POOL = ipaddress.ip_network("198.19.0.0/16")  # network:pod_cidr of the lab's pillar
APISERVER_SERVICE_IP = "198.18.16.1"  # the first address of network:service_cidr


def _node(lab, node_id):
    return next(n for n in lab.nodes if n.id == node_id)


def _routes(lab, node_id):
    """``{prefix: next hop}`` of the BGP routes in ``node_id``'s kernel."""
    out = containers.inside(
        lab, _node(lab, node_id), ["ip", "-4", "route", "show", "proto", "bird"]
    )
    routes = {}
    for line in out.stdout.splitlines():
        fields = line.split()
        if "via" in fields:
            routes[fields[0]] = fields[fields.index("via") + 1]
    return routes


@pytest.fixture(scope="module")
def web(cluster):
    """One httpd pod per worker, a Service in front of them, and a client pod per worker."""
    lab = cluster
    workloads.apply(
        lab,
        workloads.http_server("web", replicas=2),
        workloads.service("web"),
        *(workloads.client_pod(f"client-{w}", w) for w in WORKERS),
    )
    servers = workloads.wait_ready(lab, "app=web", 2)
    for worker in WORKERS:
        workloads.wait_ready(lab, f"app=client-{worker}", 1)
    yield {p["node"]: p for p in servers}
    workloads.delete(lab, "deployment/web", "service/web", *(f"pod/client-{w}" for w in WORKERS))


def test_every_worker_is_ready_with_every_component_healthy(cluster):
    lab = cluster
    nodes = workloads.get(lab, "nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == list(WORKERS)
    for node in nodes:
        info = node["status"]["nodeInfo"]
        assert info["kubeletVersion"] == f"v{lab.versions()['kubernetes']}"
        assert info["containerRuntimeVersion"] == f"containerd://{lab.versions()['containerd']}"
    for worker in WORKERS:
        # Every component with a health endpoint answers it itself ...
        answers = heal.salt(lab, worker, "kubesalt_unit.health")
        assert set(answers) == {
            "kube-apiserver-proxy.service",
            "kubelet.service",
            "kube-proxy.service",
            "calico-felix.service",
        }
        for unit, answer in answers.items():
            assert answer["healthy"], (worker, unit, answer)
        # ... and every unit of the role is active (calico-node's one-shot startup exited
        # successfully and stays active).
        for unit in kubesalt_core.components.managed_units(["worker"]):
            props = heal.unit_props(lab, worker, unit)
            assert props["ActiveState"] == "active", (worker, unit, props)


def test_pods_get_addresses_from_the_pool_within_their_nodes_block(cluster, web):
    blocks = workloads.blocks(cluster)
    for worker in WORKERS:
        pod = web[worker]
        address = ipaddress.ip_address(pod["ip"])
        assert address in POOL, pod
        assert any(address in ipaddress.ip_network(b) for b in blocks[worker]), (pod, blocks)


def test_a_pod_reaches_a_pod_on_the_other_worker_over_tcp_and_icmp(cluster, web):
    lab = cluster
    there = web["worker-2"]
    ping = workloads.exec_in(lab, "client-worker-1", f"ping -c 3 -W 2 {there['ip']}")
    assert " 0% packet loss" in ping.stdout, ping.stdout
    page = workloads.exec_in(
        lab, "client-worker-1", f"timeout 5 wget -qO- http://{there['ip']}:8080/"
    )
    assert page.stdout.strip() == there["name"]


def test_the_traffic_follows_the_routes_the_router_learnt_unencapsulated(cluster, web):
    lab = cluster
    blocks = workloads.blocks(lab)
    ips = {n.id: n.ip for n in lab.nodes}
    router_routes = _routes(lab, "router-1")
    bird_routes = containers.inside(
        lab, _node(lab, "router-1"), ["birdc", "-s", bgp.ROUTER_SOCKET, "show", "route"]
    ).stdout
    for worker, other in (WORKERS, WORKERS[::-1]):
        for block in blocks[worker]:
            # The router learnt the worker's block from the worker's own BIRD ...
            assert router_routes.get(block) == ips[worker], router_routes
            assert block in bird_routes and ips[worker] in bird_routes, bird_routes
            # ... and reflected it to the other worker, whose kernel routes it there directly.
            assert _routes(lab, other).get(block) == ips[worker]
        links = containers.inside(lab, _node(lab, worker), ["ip", "-d", "link", "show"]).stdout
        assert not any(kind in links for kind in ("vxlan", "ipip", "tunl0")), links
    # The other worker's pod is two routed hops away (this node, then the other node).
    route = workloads.exec_in(
        lab, "client-worker-1", f"ping -c 1 -W 2 {web['worker-2']['ip']}"
    ).stdout
    assert "ttl=62" in route, route


def test_a_service_answers_by_cluster_ip_and_by_name_from_the_other_worker(cluster, web):
    lab = cluster
    # A server on worker-1 only, behind a Service of its own: every answer crosses workers.
    workloads.apply(lab, workloads.http_server("solo", node="worker-1"), workloads.service("solo"))
    (server,) = workloads.wait_ready(lab, "app=solo", 1)
    cluster_ip = workloads.get(lab, "service", "solo")["spec"]["clusterIP"]
    name = "solo.default.svc.cluster.local"
    try:
        for target in (cluster_ip, name):
            page = workloads.exec_in(
                lab, "client-worker-2", f"timeout 5 wget -qO- http://{target}/"
            )
            assert page.stdout.strip() == server["name"], target
        resolved = workloads.exec_in(lab, "client-worker-2", f"nslookup {name}").stdout
        assert f"Address: {cluster_ip}" in resolved, resolved
        kubernetes = workloads.exec_in(
            lab, "client-worker-2", "nslookup kubernetes.default.svc.cluster.local"
        ).stdout
        assert f"Address: {APISERVER_SERVICE_IP}" in kubernetes, kubernetes
    finally:
        workloads.delete(lab, "deployment/solo", "service/solo")


def test_kube_dns_is_coredns_at_the_pillars_address(cluster):
    lab = cluster
    service = workloads.get(lab, "service", "-n", "kube-system", "kube-dns")
    assert service["spec"]["clusterIP"] == "198.18.16.10"  # network:cluster_dns_ip
    deployment = workloads.get(lab, "deployment", "-n", "kube-system", "coredns")
    assert deployment["status"].get("readyReplicas") == deployment["spec"]["replicas"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"coredns/coredns:{lab.versions()['coredns']}"
    controllers = workloads.get(lab, "deployment", "-n", "kube-system", "calico-kube-controllers")
    assert controllers["status"].get("readyReplicas") == 1


def test_kubectl_logs_exec_and_port_forward_go_through_the_apiservers(cluster, web):
    lab = cluster
    server = web["worker-1"]
    client_ip = workloads.pods(lab, "app=client-worker-2")[0]["ip"]
    workloads.exec_in(lab, "client-worker-2", f"timeout 5 wget -qO- http://{server['ip']}:8080/")
    logs = workloads.kubectl(lab, "logs", server["name"]).stdout
    assert client_ip in logs, logs
    said = workloads.exec_in(lab, server["name"], "cat /www/index.html").stdout
    assert said.strip() == server["name"]
    fetch = (
        "import sys, urllib.request\n"
        "print(urllib.request.urlopen('http://127.0.0.1:18080/', timeout=3).read().decode())"
    )
    script = (
        f"kubectl --kubeconfig {workloads.ADMIN} port-forward pod/{server['name']} 18080:8080 "
        ">/dev/null 2>&1 & pf=$!\n"
        f'for i in $(seq 100); do python3 -c "{fetch}" 2>/dev/null && break; sleep 0.2; done\n'
        "kill $pf"
    )
    forwarded = containers.inside(lab, _node(lab, "master-2"), ["sh", "-c", script]).stdout
    assert forwarded.strip() == server["name"], forwarded


def _sessions_up(lab):
    rows = bgp.sessions(lab)
    return rows and all(r[3].startswith("Established") for r in rows)


def test_the_routers_bird_restarted_brings_sessions_and_routes_back(cluster, web):
    lab = cluster
    router = _node(lab, "router-1")
    containers.inside(lab, router, ["systemctl", "restart", "bird.service"])
    started = time.monotonic()
    wait_until(lambda: _sessions_up(lab), 60, interval=0.5, what="sessions Established")
    blocks = workloads.blocks(lab)
    wait_until(
        lambda: all(b in _routes(lab, "router-1") for w in WORKERS for b in blocks[w]),
        60,
        interval=0.5,
        what="the blocks back in the router's kernel",
    )
    assert time.monotonic() - started < 60
    page = workloads.exec_in(
        lab, "client-worker-1", f"timeout 5 wget -qO- http://{web['worker-2']['ip']}:8080/"
    )
    assert page.stdout.strip() == web["worker-2"]["name"]


@pytest.mark.parametrize(
    "worker, unit", [("worker-1", "calico-bird.service"), ("worker-2", "kubelet.service")]
)
def test_a_worker_unit_systemd_gave_up_on_is_repaired_by_kubesalt(cluster, worker, unit):
    lab = cluster
    assert heal.salt(lab, worker, "kubesalt_heal.reset", unit) == {"unit": unit, "reset": True}
    since = time.time()
    heal.give_up(lab, worker, unit)
    heal.wait_active(lab, worker, unit, timeout=90)
    # systemd had given up (after its RestartSec): kubesalt brought the unit back.
    said = heal.sh(lab, worker, f"journalctl -o cat _PID=1 UNIT={unit} --since=@{int(since)}")
    assert "Start request repeated too quickly" in said.stdout
    records = heal.wait_repair_recorded(lab, worker, unit, since, timeout=90)
    assert [(r["action"], r["held"]) for r in records][-1] == ("restart", True), records
    if unit == "calico-bird.service":
        wait_until(lambda: _sessions_up(lab), 60, interval=0.5, what="worker-1's session back")
    else:
        wait_until(
            lambda: workloads.ready_nodes(lab) == list(WORKERS),
            60,
            interval=1,
            what="worker-2 Ready again",
        )


def test_status_reports_every_worker_unit_running(cluster):
    shown = overview.status(cluster)
    states = {(node, unit): state for node, unit, state in shown["units"]}
    for worker in WORKERS:
        for unit in kubesalt_core.components.managed_units(["worker"]):
            state = states[(worker, unit)]
            assert state.startswith("active"), (worker, unit, state)
    tables = overview.status_tables(shown)
    assert "artifact not available" not in tables
    assert master.master_pid(cluster)


def _started(lab, worker, unit):
    """The unit's current invocation: a new one on every start."""
    return heal.unit_props(lab, worker, unit)["InvocationID"]


def test_a_reissued_certificate_restarts_exactly_the_units_that_read_it(cluster):
    lab = cluster
    readers = ("calico-felix.service", "calico-confd.service", "calico-node.service")
    others = ("kubelet.service", "kube-proxy.service", "containerd.service")
    before = {u: _started(lab, "worker-1", u) for u in readers + others}
    # Gone from disk: the next run re-issues it (as a renewal would).
    heal.sh(lab, "worker-1", "rm /etc/kubernetes/pki/calico-felix.crt")
    ret = master.run_salt(lab, "worker-1", "state.apply", "kubesalt.units", timeout=300)
    ret = ret["worker-1"]
    assert all(s["result"] for s in ret.values()), ret
    restarted = {
        s["name"]
        for s in ret.values()
        if s["__id__"].endswith("-credentials-current") and s["changes"]
    }
    assert restarted == {"calico-felix", "calico-confd", "calico-node"}, restarted
    after = {u: _started(lab, "worker-1", u) for u in readers + others}
    assert all(after[u] != before[u] for u in readers), (before, after)
    assert all(after[u] == before[u] for u in others), (before, after)
    again = master.run_salt(lab, "worker-1", "state.apply", "kubesalt.units", timeout=300)
    assert not [s["__id__"] for s in again["worker-1"].values() if s["changes"]]
    wait_until(lambda: _sessions_up(lab), 60, interval=0.5, what="worker-1's BGP back")


GHOST = "ghost-1"
GHOST_CONTAINER = "kubesalt-ghost-sandbox"
# The CNI network's name and the container: the handle calico-ipam records the address under.
GHOST_HANDLE = f"k8s-pod-network.{GHOST_CONTAINER}"


def _ghost_ipam_add(lab):
    """Ask worker-1's own calico-ipam plugin, as containerd would for a pod sandbox, for an
    address on behalf of a node that has no kubelet: the network config is the worker's own
    conflist with only the node name changed. Returns the address calico-ipam gave."""
    script = (
        "python3 -c '"
        'import json; c = json.load(open("/etc/cni/net.d/10-calico.conflist")); '
        'p = c["plugins"][0]; '
        f'p.update(name=c["name"], cniVersion=c["cniVersion"], nodename="{GHOST}"); '
        "print(json.dumps(p))' | "
        # IPAM needs no network namespace, but the plugin refuses its own: name none at all.
        f"CNI_COMMAND=ADD CNI_CONTAINERID={GHOST_CONTAINER} CNI_NETNS=/run/netns/{GHOST} "
        "CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin "
        # As containerd passes them: the plugin refuses unknown arguments without IgnoreUnknown.
        f'CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={GHOST}-pod" '
        "/opt/cni/bin/calico-ipam"
    )
    added = heal.sh(lab, "worker-1", script)
    assert added.returncode == 0, added.stdout + added.stderr[-2000:]
    (ip,) = json.loads(added.stdout)["ips"]
    return ipaddress.ip_interface(ip["address"]).ip


def _ipam_of(lab, node):
    """What Calico's IPAM holds for ``node``: its block affinities, the blocks affine to it,
    and the ghost's handle if it still exists."""
    affinities = [
        a["spec"]["cidr"]
        for a in workloads.get(lab, "blockaffinities.crd.projectcalico.org")["items"]
        if a["spec"]["node"] == node and a["spec"].get("deleted") != "true"
    ]
    blocks = [
        b["spec"]["cidr"]
        for b in workloads.get(lab, "ipamblocks.crd.projectcalico.org")["items"]
        if b["spec"].get("affinity") == f"host:{node}"
    ]
    handles = [
        h["spec"]["handleID"]
        for h in workloads.get(lab, "ipamhandles.crd.projectcalico.org")["items"]
        if h["spec"]["handleID"] == GHOST_HANDLE
    ]
    return {"affinities": affinities, "blocks": blocks, "handles": handles}


def test_calico_kube_controllers_releases_a_deleted_nodes_block_and_addresses(cluster):
    """A node leaves the cluster with an address still allocated in its block: once its Node
    is deleted (and the address's pod does not exist), calico-kube-controllers frees the
    address and releases the node's block, so the pool does not leak."""
    lab = cluster
    # A Node with no kubelet behind it, which nothing may schedule on.
    workloads.apply(
        lab,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": GHOST, "labels": {"kubernetes.io/hostname": GHOST}},
            "spec": {
                "unschedulable": True,
                "taints": [{"key": "kubesalt.test/ghost", "effect": "NoSchedule"}],
            },
        },
    )
    try:
        address = _ghost_ipam_add(lab)
        assert address in POOL
        held = _ipam_of(lab, GHOST)
        assert len(held["affinities"]) == 1 and held["handles"] == [GHOST_HANDLE], held
        (block,) = held["affinities"]
        assert address in ipaddress.ip_network(block)
        # The real workers' blocks are not the ghost's.
        workers = {n: c for n, c in workloads.blocks(lab).items() if n != GHOST}
        assert all(block not in cidrs for cidrs in workers.values()), workers
    finally:
        workloads.kubectl(lab, "delete", "node", GHOST, "--ignore-not-found")
    wait_until(
        lambda: _ipam_of(lab, GHOST) == {"affinities": [], "blocks": [], "handles": []},
        120,
        interval=1,
        what=f"calico-kube-controllers to release {GHOST}'s block and address",
    )
    # The workers kept theirs.
    assert sorted(workloads.blocks(lab)) == list(WORKERS)
