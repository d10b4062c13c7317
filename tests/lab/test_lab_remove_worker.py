"""A worker leaving the real cluster with kubesalt.orch.remove_worker: refused for a master
and for a worker pillar still lists; once worker-2 is out of pillar, it is drained (the
budget of a Deployment that clients on worker-1 keep asking is honoured), emptied, its
units stopped, its Node deleted, its Calico blocks and affinities released, and the
router's BIRD ends its session; the pods on worker-1 keep serving throughout.

The lab has one worker left afterwards; `test_lab_down.py` comes next.
"""

import copy
import json

import pytest

from kubesalt_lab import bgp, containers, master, steady_traffic, workloads
from kubesalt_lab.system import wait_until

ORCH = "kubesalt.orch.remove_worker"
LEAVING, STAYING = "worker-2", "worker-1"


@pytest.fixture(scope="module")
def served(cluster):
    steady_traffic.start(cluster, "staying")
    return cluster


def _refusal(lab, target):
    ok, steps = master.orchestrate(lab, ORCH, pillar={"target": target}, timeout=300)
    assert not ok
    assert list(steps) == ["kubesalt-orch-remove-worker-refused"], steps
    return steps["kubesalt-orch-remove-worker-refused"]["name"]


def test_a_master_and_a_worker_still_in_pillar_are_refused(served):
    assert "has the master role" in _refusal(served, "master-2")
    refused = _refusal(served, LEAVING)
    assert "still in pillar with roles worker" in refused and "nothing was changed" in refused
    assert LEAVING in workloads.ready_nodes(served)


@pytest.fixture(scope="module")
def removed(served):
    lab = served
    nodes = copy.deepcopy(master.lab_pillar(lab).tree()["nodes"])
    del nodes[LEAVING]
    assert all(master.override_pillar(lab, {"nodes": nodes}).values())
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
    steady_traffic.stop(lab, "staying")
