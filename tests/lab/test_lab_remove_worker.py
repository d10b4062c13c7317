"""A worker leaving the real cluster with kubesalt.orch.remove_worker: refused for a master
and for a worker pillar still lists; once worker-2 is out of pillar, it is drained (the
budget of a Deployment that clients on worker-1 keep asking is honoured), emptied, its
units stopped, its Node deleted, its Calico blocks and affinities released, and the
router's BIRD ends its session; the pods on worker-1 keep serving throughout. Then
worker-2 comes back (pillar and a highstate), its host is powered off, and it is removed
as a dead worker: refused while its Node is Ready and without force, then fenced (its pods
deleted without its kubelet) and removed.

The lab has one worker left afterwards (worker-2's host powered off); `test_lab_down.py`
comes next.
"""

import copy
import json
import time

import pytest

from kubesalt_lab import bgp, containers, converge, lifecycle, master, steady_traffic, workloads
from kubesalt_lab.system import wait_until

ORCH = "kubesalt.orch.remove_worker"
LEAVING, STAYING = "worker-2", "worker-1"


@pytest.fixture(scope="module")
def served(cluster):
    steady_traffic.start(cluster, "staying")
    return cluster


def _refusal(lab, target, **pillar):
    ok, steps = master.orchestrate(lab, ORCH, pillar={"target": target, **pillar}, timeout=300)
    assert not ok
    assert list(steps) == ["kubesalt-orch-remove-worker-refused"], steps
    return steps["kubesalt-orch-remove-worker-refused"]["name"]


def test_a_master_and_a_worker_still_in_pillar_are_refused(served):
    assert "has the master role" in _refusal(served, "master-2")
    refused = _refusal(served, LEAVING)
    assert "still in pillar with roles worker" in refused and "nothing was changed" in refused
    assert LEAVING in workloads.ready_nodes(served)


def _without_leaving(lab, down=()):
    nodes = copy.deepcopy(master.lab_pillar(lab).tree()["nodes"])
    del nodes[LEAVING]
    assert all(master.override_pillar(lab, {"nodes": nodes}, skip=down).values())


@pytest.fixture(scope="module")
def removed(served):
    lab = served
    _without_leaving(lab)
    ok, steps = master.orchestrate(lab, ORCH, pillar={"target": LEAVING}, timeout=1800)
    assert ok, master.failed_steps(steps)
    return lab, steps


def test_the_node_its_blocks_and_its_session_are_gone(removed):
    lab, _steps = removed
    assert workloads.ready_nodes(lab) == [STAYING]
    names = [n["metadata"]["name"] for n in workloads.get(lab, "nodes")["items"]]
    assert LEAVING not in names
    left = master.run_salt(lab, "master-1", "kubesalt_node.ipam", LEAVING)["master-1"]
    assert left == [], left
    assert set(workloads.blocks(lab)) == {STAYING}
    sessions = [row[1] for row in bgp.sessions(lab)]
    assert "node_worker_1" in sessions and "node_worker_2" not in sessions, sessions
    kubelet = containers.inside(
        lab, lab.node(LEAVING), ["systemctl", "is-active", "kubelet"], check=False
    )
    assert kubelet.stdout.strip() == "inactive"


def test_the_pods_on_the_other_worker_kept_serving(removed):
    lab, _steps = removed
    pods = wait_until(
        lambda: [p for p in workloads.pods(lab, "app=staying") if p["ready"]] or None,
        120, interval=2, what="the Deployment's pods ready",
    )  # fmt: skip
    assert {p["node"] for p in pods} == {STAYING}
    counted = steady_traffic.answers(lab, "staying")
    mine = counted[STAYING]
    asked = mine["ok"] + mine["fail"]
    assert asked > 100 and mine["fail"] <= asked // 100, json.dumps(counted)
    assert mine["longest_burst_seconds"] < 15, json.dumps(counted)


def _node_ready(lab, node):
    found = {n["metadata"]["name"]: n for n in workloads.get(lab, "nodes")["items"]}
    conditions = (found.get(node) or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def came_back_and_died(removed):
    """worker-2 back in pillar and applied (with its routers), then its host powered off."""
    lab, _ = removed
    assert all(master.override_pillar(lab, {}).values())
    again = converge.apply(lab, lambda _m: None, roles=("worker", "router"), together=True)
    for node_id, result in again.items():
        assert (result["failed"], result["errors"]) == (0, []), (node_id, result)
    wait_until(lambda: _node_ready(lab, LEAVING), 180, interval=2, what=f"{LEAVING} Ready")
    workloads.kubectl(lab, "scale", "deployment/staying", "--replicas=4")
    pods = workloads.wait_ready(lab, "app=staying", 4, timeout=180)
    assert LEAVING in {p["node"] for p in pods}, pods
    lifecycle.stop_host(lab, LEAVING, lambda _m: None)
    return lab


def test_a_worker_back_in_pillar_joins_again(came_back_and_died):
    lab = came_back_and_died
    assert set(workloads.blocks(lab)) == {STAYING, LEAVING}


def test_a_dead_worker_is_refused_while_ready_and_without_force(came_back_and_died):
    lab = came_back_and_died
    _without_leaving(lab, down=(LEAVING,))
    if _node_ready(lab, LEAVING):  # its last heartbeat is less than 40 s old
        refused = _refusal(lab, LEAVING, force=True)
        assert "its Node is Ready (its kubelet runs)" in refused, refused
    wait_until(lambda: not _node_ready(lab, LEAVING), 120, interval=2,
               what=f"{LEAVING} NotReady")  # fmt: skip
    refused = _refusal(lab, LEAVING)
    assert "minion does not answer and its Node is NotReady" in refused
    assert "force: true" in refused and "nothing was changed" in refused
    assert LEAVING in [n["metadata"]["name"] for n in workloads.get(lab, "nodes")["items"]]


def test_a_dead_worker_is_fenced_and_removed_when_forced(came_back_and_died):
    lab = came_back_and_died
    ok, steps = master.orchestrate(lab, ORCH, pillar={"target": LEAVING, "force": True},
                                   timeout=1800)  # fmt: skip
    assert ok, master.failed_steps(steps)
    assert list(steps) == [
        "kubesalt-orch-remove-worker-fenced",
        "kubesalt-orch-remove-worker-node-deleted",
        "kubesalt-orch-remove-worker-ipam-released",
        "kubesalt-orch-remove-worker-routers-updated",
    ], steps
    print({k.removeprefix("kubesalt-orch-remove-worker-"): s["seconds"] for k, s in steps.items()})
    names = [n["metadata"]["name"] for n in workloads.get(lab, "nodes")["items"]]
    assert names == [STAYING]
    assert master.run_salt(lab, "master-1", "kubesalt_node.ipam", LEAVING)["master-1"] == []
    assert set(workloads.blocks(lab)) == {STAYING}
    sessions = [row[1] for row in bgp.sessions(lab)]
    assert "node_worker_2" not in sessions, sessions
    # The Deployment's pods that were on the dead worker run again on the other one, and
    # once they are gone from the Service nothing sent to it fails. (Until the Node was
    # NotReady, about 40 s, requests sent to its pods did: Kubernetes' own detection.)
    removed_at = time.time()
    pods = workloads.wait_ready(lab, "app=staying", 4, timeout=180)
    assert {p["node"] for p in pods} == {STAYING}, pods
    time.sleep(5)
    counted = steady_traffic.answers(lab, "staying")[STAYING]
    assert [t for t in counted["failed_at"] if t > removed_at] == [], counted
    steady_traffic.stop(lab, "staying")
