"""Kubernetes NetworkPolicy, enforced by Calico's felix on the lab's workers, shown with real
connections between pods on both workers: a namespace that denies everything coming in, an
allow rule by pod label, one by namespace, and egress limited to an address block.

The tests build on each other in file order (each adds a policy to the ones before it).
"""

import pytest

from kubesalt_lab import workloads
from kubesalt_lab.config import LabError
from kubesalt_lab.system import wait_until

SERVERS = "np-servers"
OTHERS = "np-others"
PORT = workloads.HTTP_PORT


def _namespace(name, labels):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _policy(name, namespace, spec):
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def pods(lab_up, first_apply):
    """Two servers in one namespace (one per worker), clients in it and in another one."""
    lab, _ = lab_up
    for node_id, summary in first_apply.items():
        assert (summary["failed"], summary["errors"]) == (0, []), (node_id, summary)
    workloads.apply(
        lab,
        _namespace(SERVERS, {"purpose": "servers"}),
        _namespace(OTHERS, {"purpose": "others"}),
    )
    workloads.apply(
        lab,
        workloads.http_server("web-1", node="worker-1", namespace=SERVERS),
        workloads.http_server("web-2", node="worker-2", namespace=SERVERS),
        workloads.client_pod("friend", "worker-2", namespace=SERVERS),
        workloads.client_pod("stranger", "worker-1", namespace=SERVERS),
        workloads.client_pod("neighbour", "worker-2", namespace=OTHERS),
    )
    found = {}
    for name in ("web-1", "web-2", "friend", "stranger"):
        (found[name],) = workloads.wait_ready(lab, f"app={name}", 1, namespace=SERVERS)
    (found["neighbour"],) = workloads.wait_ready(lab, "app=neighbour", 1, namespace=OTHERS)
    yield lab, found
    workloads.kubectl(lab, "delete", "namespace", SERVERS, OTHERS, "--wait=false")


def _reaches(lab, client, server_ip):
    namespace = OTHERS if client == "neighbour" else SERVERS
    said = workloads.exec_in(
        lab,
        client,
        f"timeout 2 wget -qO- http://{server_ip}:{PORT}/",
        namespace=namespace,
        check=False,
    )
    return said.returncode == 0


def _expect(lab, found, expected, timeout=30):
    """Wait until each (client, server) in ``expected`` connects exactly as expected."""
    seen = {}

    def as_expected():
        for client, server in expected:
            seen[(client, server)] = _reaches(lab, client, found[server]["ip"])
        return seen == expected

    try:
        wait_until(as_expected, timeout, interval=1, what="the policies to take effect")
    except LabError:
        wrong = {k: v for k, v in seen.items() if v != expected[k]}
        pytest.fail(f"connections not as the policies say (pair: connected): {wrong}")


EVERYONE = ("friend", "stranger", "neighbour")


def test_without_a_policy_every_pod_reaches_both_servers(pods):
    lab, found = pods
    _expect(lab, found, {(c, s): True for c in EVERYONE for s in ("web-1", "web-2")})


def test_a_default_deny_namespace_refuses_every_connection_in(pods):
    lab, found = pods
    workloads.apply(
        lab, _policy("deny-in", SERVERS, {"podSelector": {}, "policyTypes": ["Ingress"]})
    )
    _expect(lab, found, {(c, s): False for c in EVERYONE for s in ("web-1", "web-2")})


def test_an_allow_rule_by_pod_label_lets_only_that_pod_in(pods):
    lab, found = pods
    rule = {
        "podSelector": {"matchLabels": {"app": "web-1"}},
        "ingress": [
            {
                "from": [{"podSelector": {"matchLabels": {"app": "friend"}}}],
                "ports": [{"protocol": "TCP", "port": PORT}],
            }
        ],
    }
    workloads.apply(lab, _policy("friend-to-web-1", SERVERS, rule))
    _expect(
        lab,
        found,
        {
            ("friend", "web-1"): True,
            ("friend", "web-2"): False,  # the rule selects web-1 only
            ("stranger", "web-1"): False,
            ("neighbour", "web-1"): False,  # same label, other namespace: not selected
        },
    )


def test_an_allow_rule_by_namespace_lets_that_namespace_in(pods):
    lab, found = pods
    rule = {
        "podSelector": {},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"purpose": "others"}}}]}],
    }
    workloads.apply(lab, _policy("others-in", SERVERS, rule))
    _expect(
        lab,
        found,
        {
            ("neighbour", "web-1"): True,
            ("neighbour", "web-2"): True,
            ("stranger", "web-1"): False,
            ("stranger", "web-2"): False,
            ("friend", "web-1"): True,
        },
    )


def test_egress_limited_to_an_address_block_reaches_only_that_block(pods):
    lab, found = pods
    rule = {
        "podSelector": {"matchLabels": {"app": "neighbour"}},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [{"ipBlock": {"cidr": f"{found['web-2']['ip']}/32"}}],
                "ports": [{"protocol": "TCP", "port": PORT}],
            }
        ],
    }
    workloads.apply(lab, _policy("neighbour-out", OTHERS, rule))
    # web-1 would let the neighbour in (the namespace rule), but its egress stops it.
    _expect(lab, found, {("neighbour", "web-2"): True, ("neighbour", "web-1"): False})
    # Removing the policies opens everything again.
    workloads.kubectl(lab, "delete", "networkpolicy", "--all", "-n", SERVERS)
    workloads.kubectl(lab, "delete", "networkpolicy", "--all", "-n", OTHERS)
    _expect(lab, found, {(c, s): True for c in EVERYONE for s in ("web-1", "web-2")})
