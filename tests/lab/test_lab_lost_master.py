"""Losing a master's whole host (every process killed at once, its link down, as a pulled
plug) while clients work: the workers reach the other apiservers through their node-local
proxies, Typha and the leader leases move, the CA host's absence only holds back what needs
it, and the host rejoins by itself when it boots again."""

import json
import time

import pytest

import kubesalt_core.components
from kubesalt_lab import containers, converge, heal, lifecycle, master, overview, workloads
from kubesalt_lab.config import LabError
from kubesalt_lab.system import wait_until
from kubesalt_lab.writers import ProxiedApiWriter
from tests.lab.conftest import quiet

WORKERS = ("worker-1", "worker-2")
MASTERS = ("master-1", "master-2", "master-3")
LEASES = ("kube-scheduler", "kube-controller-manager")
# Renewal due for every certificate (they are issued for 365 days), for one run only.
RENEW_ALL = '{"kubesalt": {"pki": {"leaf_days": 400, "renew_before_days": 366}}}'
PKI_STATE = "kubesalt-pki-certificates-present"


@pytest.fixture(scope="module")
def survivor(cluster):
    """A Deployment spread over the workers, its Service, and a client pod per worker."""
    lab = cluster
    workloads.apply(
        lab,
        workloads.http_server("survivor", replicas=2),
        workloads.service("survivor"),
        *(workloads.client_pod(f"asker-{w}", w) for w in WORKERS),
    )
    workloads.wait_ready(lab, "app=survivor", 2)
    for worker in WORKERS:
        workloads.wait_ready(lab, f"app=asker-{worker}", 1)
    yield lab
    workloads.delete(lab, "deployment/survivor", "service/survivor",
                     *(f"pod/asker-{w}" for w in WORKERS))  # fmt: skip


def _salt(lab, target, fun, *args, timeout=120):
    return master.run_salt(lab, target, fun, *args, timeout=timeout).get(target)


def _leases(lab, asked):
    answer = _salt(lab, asked, "kubesalt_manifest.leases")
    assert isinstance(answer, dict), answer
    return {name: (answer.get(name) or {}).get("holder") or "" for name in LEASES}


def _etcd_leader(lab, asked):
    rows = _salt(lab, asked, "kubesalt_etcd.status")
    assert isinstance(rows, list), rows
    return next((r["name"] for r in rows if r["leader"]), None)


def _healthy(lab, node_id):
    """Every component of ``node_id`` that has a health check answers it."""
    answers = _salt(lab, node_id, "kubesalt_unit.health", timeout=60)
    if not isinstance(answers, dict):
        return False
    probed = {
        c.unit_name for c in kubesalt_core.components.for_roles(lab.node(node_id).roles) if c.health
    }
    return set(answers) == probed and all(a["healthy"] for a in answers.values())


def _service_answers(lab, worker):
    page = workloads.exec_in(
        lab,
        f"asker-{worker}",
        "timeout 5 wget -qO- http://survivor.default.svc.cluster.local:80/",
        check=False,
    )
    return page.returncode == 0 and page.stdout.strip().startswith("survivor-")


def _answer(action):
    """``action()``, or None when the API call in it failed. While a master's host is gone,
    an apiserver's request that its etcd client had sent to the lost member fails once
    that connection times out ("rpc error: code = Unavailable ... read: connection timed
    out"); a client tries again, as kubectl's users and controllers do."""
    try:
        return action()
    except (LabError, AssertionError):
        return None


def _scale(lab, replicas):
    """Scale the Deployment, trying again while an apiserver refuses (see _answer)."""
    wait_until(
        lambda: _answer(
            lambda: workloads.kubectl(lab, "scale", "deployment/survivor", f"--replicas={replicas}")
        ),
        60,
        interval=2,
        what=f"the Deployment scaled to {replicas}",
    )


def _ride_out(lab, victim, tmp_path, while_down=None, once_back=None):
    """Stop ``victim``'s host under load, check the cluster through the outage, boot it
    again (also when a check failed), then a highstate of every node changes nothing (on
    the nodes ``once_back()`` names, run before it, it changes no more than that says).
    Returns what was measured."""
    asked = next(m for m in MASTERS if m != victim)
    measured = {}
    with ProxiedApiWriter(lab, "worker-1", tmp_path / "writer") as writer:
        stopped_at = time.monotonic()
        lifecycle.stop_host(lab, victim, quiet)
        try:
            _while_down(lab, victim, asked, stopped_at, measured, while_down)
        finally:
            measured["outage_seconds"] = round(time.monotonic() - stopped_at, 1)
            lifecycle.start_host(lab, victim, quiet)
        # It rejoins by itself: its etcd member and every component healthy, nothing applied.
        wait_until(lambda: _healthy(lab, victim), 180, interval=3,
                   what=f"{victim} healthy again by itself")  # fmt: skip
        rows = _salt(lab, asked, "kubesalt_etcd.status")
        assert sorted(r["name"] for r in rows if r["healthy"]) == list(MASTERS), rows
        measured["rejoined_seconds"] = round(time.monotonic() - stopped_at, 1)
    summary = writer.summary
    measured["writer"] = summary
    print(measured)
    # No acknowledged write is lost; the client went on writing through the outage.
    assert summary["missing"] == 0, json.dumps(summary)
    assert summary["acknowledged"] > 100, json.dumps(summary)
    assert summary["failed_creates"] <= 10, json.dumps(summary)
    allowed = once_back() if once_back else {}
    again = converge.apply(lab, quiet, together=True)
    for node_id, result in again.items():
        assert (result["failed"], result["errors"]) == (0, []), (node_id, result)
        assert result["changed"] <= allowed.get(node_id, 0), (node_id, result)
    return measured


def _while_down(lab, victim, asked, stopped_at, measured, while_down):
    hosts = {row[0]: row for row in overview.status(lab)["hosts"]}
    assert hosts[victim][3:] == ["stopped", "-"], hosts[victim]
    # The leases end up with a live holder (a lease runs out 15 s after its last renewal).
    wait_until(
        lambda: _answer(
            lambda: all(h and not h.startswith(victim) for h in _leases(lab, asked).values())
        ),
        90,
        interval=1,
        what=f"the leader leases held by a master other than {victim}",
    )
    measured["leases_moved_seconds"] = round(time.monotonic() - stopped_at, 1)
    # A Deployment scaled while the master is gone: new pods scheduled, started, addressed.
    _scale(lab, 4)
    pods = wait_until(
        lambda: _answer(lambda: workloads.wait_ready(lab, "app=survivor", 4, timeout=0)),
        150,
        interval=1,
        what="4 pods of the Deployment ready",
    )
    assert all(p["ip"] for p in pods), pods
    assert {p["node"] for p in pods} == set(WORKERS), pods
    # Services and the cluster's DNS answer from both workers.
    for worker in WORKERS:
        wait_until(lambda w=worker: _answer(lambda: _service_answers(lab, w)), 60, interval=1,
                   what=f"the Service by name from {worker}")  # fmt: skip
    # felix on both workers has a Typha again (its readiness needs one).
    wait_until(
        lambda: all(
            (_salt(lab, w, "kubesalt_unit.health", "calico-felix", timeout=60) or {})
            .get("calico-felix.service", {})
            .get("healthy")
            for w in WORKERS
        ),
        120,
        interval=2,
        what="felix ready on both workers",
    )
    measured["felix_ready_seconds"] = round(time.monotonic() - stopped_at, 1)
    if while_down:
        while_down(measured)
    # Both workers stayed Ready through all of it.
    assert wait_until(lambda: _answer(lambda: workloads.ready_nodes(lab)), 30) == list(WORKERS)
    _scale(lab, 2)


def test_the_router_forwards_by_kubesalts_own_setting(cluster):
    lab = cluster
    router = lab.node("router-1")
    files = "/proc/sys/net/ipv4/ip_forward /etc/sysctl.d/90-kubesalt.conf"
    said = containers.inside(lab, router, ["sh", "-c", f"cat {files}"]).stdout
    assert said.splitlines()[0] == "1"  # the lab's network setup leaves it at 0
    assert "net.ipv4.ip_forward = 1" in said


def test_every_worker_reaches_the_apiservers_through_its_local_proxy(cluster):
    lab = cluster
    for worker in WORKERS:
        health = _salt(lab, worker, "kubesalt_unit.health", "kube-apiserver-proxy")
        assert health["kube-apiserver-proxy.service"]["healthy"], health
        kubeconfig = containers.inside(
            lab, lab.node(worker), ["cat", "/etc/kubernetes/kubelet.conf"]
        ).stdout
        assert "server: https://127.0.0.1:6443" in kubeconfig


def test_the_cluster_rides_out_the_loss_of_the_ca_host_and_it_comes_back_by_itself(
    survivor, tmp_path
):
    lab = survivor
    victim = "master-1"  # the first master, and the CA host (pki:ca_host unset)

    def without_the_ca_host(measured):
        # A highstate (the schedule's) works on nodes that need nothing from the CA now, and
        # a renewal that falls due (every certificate, for this run) waits and says why.
        ret = master.run_salt(lab, "worker-2,master-2", "state.apply", f"pillar={RENEW_ALL}",
                              timeout=300, list_target=True)  # fmt: skip
        for node_id in ("worker-2", "master-2"):
            states = ret.get(node_id)
            assert isinstance(states, dict), (node_id, states)
            assert [s["__id__"] for s in states.values() if s["result"] is False] == []
            (pki,) = [s for s in states.values() if s["__id__"] == PKI_STATE]
            assert pki["changes"] == {}, pki
            assert "the CA host master-1 does not answer" in pki["comment"], pki
            assert "waiting for it to renew" in pki["comment"], pki
        # A unit systemd gave up on is repaired (a restart needs no CA).
        since = time.time()
        heal.give_up(lab, "worker-2", "kube-proxy.service")
        heal.wait_active(lab, "worker-2", "kube-proxy.service", timeout=120)
        measured["repair_without_ca_seconds"] = round(time.time() - since, 1)

    def renewal_completes():
        # Back: the renewal that waited completes; the units that read the renewed
        # certificates restart on the highstate after it (one change each, on worker-2).
        ret = _salt(lab, "worker-2", "state.apply", "kubesalt.pki", f"pillar={RENEW_ALL}",
                    timeout=180)  # fmt: skip
        (state,) = [s for s in ret.values() if s["__id__"] == PKI_STATE]
        assert state["result"] is True, state
        assert "kube-proxy" in state["changes"].get("issued", {}), state
        return {"worker-2": len(kubesalt_core.components.for_roles(["worker"]))}

    _ride_out(lab, victim, tmp_path, while_down=without_the_ca_host, once_back=renewal_completes)


def test_the_cluster_rides_out_the_loss_of_the_etcd_leader_holding_the_leases(survivor, tmp_path):
    lab = survivor
    holders = _leases(lab, "master-2")
    victim = holders["kube-controller-manager"].split("_")[0]
    assert victim in MASTERS, holders
    moved = _salt(lab, victim, "kubesalt_etcd.move_leader", victim)
    assert _etcd_leader(lab, victim) == victim, moved
    _ride_out(lab, victim, tmp_path)
    asked = next(m for m in MASTERS if m != victim)
    assert _etcd_leader(lab, asked) in MASTERS
