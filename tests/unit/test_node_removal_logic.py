"""A worker leaving: when its removal is refused, what of Calico's IPAM it holds, and the
orchestration's steps."""

import json

import jinja2
import yaml

import kubesalt_core.node_removal as rm
from tests.conftest import STATES_DIR

NODES = {
    "master-1": {"roles": ["master"]},
    "worker-1": {"roles": ["worker"]},
    "router-1": {"roles": ["router"]},
}


def test_a_master_or_a_worker_still_in_pillar_is_refused():
    assert "has the master role" in rm.refusal(NODES, "master-1")
    assert "kubesalt.orch.remove_master" in rm.refusal(NODES, "master-1")
    message = rm.refusal(NODES, "worker-1")
    assert "still in pillar with roles worker" in message and "take it out" in message
    assert "expected the minion id of the worker to remove" in rm.refusal(NODES, "")
    assert rm.refusal(NODES, "worker-2") is None


def _affinity(name, node, cidr):
    return {"metadata": {"name": name}, "spec": {"node": node, "cidr": cidr, "state": "confirmed"}}


def _block(cidr, node, used):
    allocations = [0] * used + [None] * (64 - used)
    return {
        "metadata": {"name": rm.block_name(cidr)},
        "spec": {"cidr": cidr, "affinity": f"host:{node}", "allocations": allocations},
    }


def test_the_blocks_of_a_node_and_which_can_go():
    affinities = [
        _affinity("worker-2-198-18-17-0-26", "worker-2", "198.18.17.0/26"),
        _affinity("worker-2-198-18-17-64-26", "worker-2", "198.18.17.64/26"),
        _affinity("worker-1-198-18-16-0-26", "worker-1", "198.18.16.0/26"),
    ]
    blocks = [
        _block("198.18.17.0/26", "worker-2", 0),
        _block("198.18.17.64/26", "worker-2", 2),
        _block("198.18.16.0/26", "worker-1", 5),
    ]
    found = rm.ipam_of("worker-2", affinities, blocks)
    assert found == [
        {"cidr": "198.18.17.0/26", "affinity": "worker-2-198-18-17-0-26",
         "block": "198-18-17-0-26", "used": 0},
        {"cidr": "198.18.17.64/26", "affinity": "worker-2-198-18-17-64-26",
         "block": "198-18-17-64-26", "used": 2},
    ]  # fmt: skip
    plan = rm.release_plan(found)
    assert plan == {
        "cidrs": ["198.18.17.0/26"],
        "blocks": ["198-18-17-0-26"],
        "affinities": ["worker-2-198-18-17-0-26"],
        "busy": {"198.18.17.64/26": 2},
    }
    assert rm.ipam_of("worker-3", affinities, blocks) == []


def _render(nodes, target, refusal, dead=False):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(STATES_DIR)), extensions=["jinja2.ext.do"]
    )
    env.filters["json"] = json.dumps
    pillar = {"kubesalt:nodes": nodes, "target": target}
    salt = {
        "pillar.get": lambda key, default=None: pillar.get(key, default),
        "saltutil.runner": lambda name, **kwargs: {"refusal": refusal, "dead": dead},
    }
    text = env.get_template("kubesalt/orch/remove_worker.sls").render(salt=salt)
    return yaml.safe_load(text)


def test_the_orchestration_refuses_with_the_reason_and_changes_nothing():
    states = _render(NODES, "worker-1", rm.refusal(NODES, "worker-1"))
    (only,) = states.values()
    (step,) = only["test.fail_without_changes"]
    assert "still in pillar with roles worker" in step["name"]
    assert step["name"].endswith("nothing was changed")


def _steps(states):
    """A rendered orchestration -> {state id: its arguments as one mapping}."""
    return {sid: dict(kv for a in next(iter(s.values())) for kv in a.items())
            for sid, s in states.items()}  # fmt: skip


def test_the_orchestration_drains_evacuates_retires_deletes_releases_then_the_routers():
    states = _render(NODES, "worker-2", None)
    assert list(states) == [
        "kubesalt-orch-remove-worker-drained",
        "kubesalt-orch-remove-worker-evacuated",
        "kubesalt-orch-remove-worker-units-retired",
        "kubesalt-orch-remove-worker-node-deleted",
        "kubesalt-orch-remove-worker-ipam-released",
        "kubesalt-orch-remove-worker-routers-updated",
    ]
    steps = _steps(states)
    assert steps["kubesalt-orch-remove-worker-drained"]["tgt"] == "master-1"
    assert steps["kubesalt-orch-remove-worker-units-retired"]["tgt"] == "worker-2"
    assert steps["kubesalt-orch-remove-worker-routers-updated"]["tgt"] == "router-1"
    assert all(s["failhard"] is True for s in steps.values())


def test_a_worker_whose_minion_does_not_answer_is_removed_only_when_down_and_forced():
    ready = rm.dead_refusal("worker-2", True, force=True)
    assert "its Node is Ready (its kubelet runs): start its salt-minion" in ready
    unforced = rm.dead_refusal("worker-2", False, force=False)
    assert "its Node is NotReady" in unforced and "pillar force: true" in unforced
    assert "salt worker-2 kubesalt_unit.retire worker" in unforced
    assert "its Node is gone" in rm.dead_refusal("worker-2", None, force=False)
    assert rm.dead_refusal("worker-2", False, force=True) is None
    assert rm.dead_refusal("worker-2", None, force=True) is None


def test_a_dead_worker_is_fenced_instead_of_drained_evacuated_and_retired():
    states = _render(NODES, "worker-2", None, dead=True)
    assert list(states) == [
        "kubesalt-orch-remove-worker-fenced",
        "kubesalt-orch-remove-worker-node-deleted",
        "kubesalt-orch-remove-worker-ipam-released",
        "kubesalt-orch-remove-worker-routers-updated",
    ]
    steps = _steps(states)
    assert steps["kubesalt-orch-remove-worker-fenced"]["name"] == "kubesalt_node.fence"
    assert steps["kubesalt-orch-remove-worker-fenced"]["tgt"] == "master-1"
    assert steps["kubesalt-orch-remove-worker-node-deleted"]["require"] == [
        {"salt": "kubesalt-orch-remove-worker-fenced"}
    ]
