"""A Kubernetes upgrade of the real cluster, from the previous minor version (built by the
lab from its module like the pinned one) to the pinned version, while a Deployment behind a
PodDisruptionBudget answers a client on every worker five times a second.

First the plain highstate is refused with nothing changed. Then a budget that can never be
met (one replica, minAvailable 1) stops the orchestration at the node that holds its pod,
after the apiservers and masters moved; the node is uncordoned and the reason names the
budget. With the budget fixed, the same orchestration goes on from there and finishes;
a highstate then changes nothing.

Kubernetes cannot go back a minor version, so this module starts from fresh hosts of its
own and leaves them to the next module.
"""

import json

import pytest

from kubesalt_lab import containers, converge, lifecycle, master, steady_traffic, workloads
from kubesalt_lab.pillar import KUBERNETES_PREVIOUS_MINOR
from kubesalt_lab.system import wait_until
from tests.lab.conftest import quiet

ORCH = "kubesalt.orch.upgrade"
MASTERS = ("master-1", "master-2", "master-3")
WORKERS = ("worker-1", "worker-2")
# A drain waits this long for a budget before the upgrade stops at that node.
# Long enough for kubectl drain to report the budget it cannot get past (its first eviction
# attempt); the rerun, which must drain for real, has the default again.
DRAIN_TIMEOUT = 15


@pytest.fixture(scope="module")
def previous(lab):
    """Fresh hosts converged on the previous minor version, every worker Ready."""
    lifecycle.down(lab, quiet)
    lifecycle.up(lab, quiet)
    lifecycle.set_pillar(lab, {"versions:kubernetes": KUBERNETES_PREVIOUS_MINOR}, quiet)
    applied = converge.apply(lab, quiet)
    for node_id, summary in applied.items():
        assert (summary["failed"], summary["errors"]) == (0, []), (node_id, summary)
    wait_until(
        lambda: workloads.ready_nodes(lab) == list(WORKERS), 180, interval=2, what="nodes Ready"
    )
    return lab


@pytest.fixture(scope="module")
def served(previous):
    lab = previous
    steady_traffic.start(lab, "steady")
    # One replica and a budget keeping one: a drain can never evict it.
    workloads.apply(
        lab,
        workloads.http_server("stuck", node="worker-1"),
        steady_traffic.budget("stuck", {"app": "stuck"}, 1),
    )
    workloads.wait_ready(lab, "app=stuck", 1)
    return lab


@pytest.fixture(scope="module")
def pinned(served):
    """The pinned version back in pillar (with a short drain timeout): the upgrade to do."""
    lifecycle.set_pillar(served, {"upgrade:drain_timeout": DRAIN_TIMEOUT}, quiet)
    return served


def _installed(lab):
    ids = ",".join((*MASTERS, *WORKERS))
    found = master.run_salt(lab, ids, "kubesalt_upgrade.installed", timeout=120, list_target=True)
    return {node: found.get(node) for node in (*MASTERS, *WORKERS)}


def _kubelets(lab):
    nodes = workloads.get(lab, "nodes")["items"]
    return {
        n["metadata"]["name"]: (
            n["status"]["nodeInfo"]["kubeletVersion"].lstrip("v"),
            bool(n["spec"].get("unschedulable")),
        )
        for n in nodes
    }


def _all_on(versions, version):
    return all(v == version for binaries in versions.values() for v in binaries.values())


def test_the_plain_highstate_is_refused_with_nothing_changed(pinned):
    lab = pinned
    target = lab.versions()["kubernetes"]
    for node_id in ("master-2", "worker-2"):
        ret = master.run_salt(lab, node_id, "state.apply", timeout=300)[node_id]
        assert isinstance(ret, dict), ret
        guard = next(s for s in ret.values() if s["__id__"] == "kubesalt-kubernetes-version-held")
        assert guard["result"] is False
        assert f"{node_id} runs Kubernetes" in guard["comment"]
        assert KUBERNETES_PREVIOUS_MINOR in guard["comment"] and target in guard["comment"]
        assert ORCH in guard["comment"]
        assert [s["__id__"] for s in ret.values() if s.get("changes")] == []
    assert _all_on(_installed(lab), KUBERNETES_PREVIOUS_MINOR)


def test_test_mode_prints_the_plan_node_by_node_and_changes_nothing(pinned):
    lab = pinned
    target = lab.versions()["kubernetes"]
    _ok, steps = master.orchestrate(lab, ORCH, timeout=900, test=True)
    plan = steps["kubesalt-orch-upgrade-plan"]
    lines = json.dumps(steps)
    for node_id in MASTERS:
        assert f"{node_id}: kube-apiserver to {target}, then wait for /readyz" in lines
    for number, node_id in enumerate(WORKERS, 1):
        assert f"batch {number}: {node_id}: cordon, drain, upgrade to {target}" in lines
    assert plan["result"] is not False
    assert _all_on(_installed(lab), KUBERNETES_PREVIOUS_MINOR)
    assert all(not unschedulable for _v, unschedulable in _kubelets(lab).values())


def test_a_budget_that_cannot_be_met_stops_the_upgrade_at_its_node(pinned):
    lab = pinned
    target = lab.versions()["kubernetes"]
    ok, steps = master.orchestrate(lab, ORCH, timeout=3600)
    assert not ok
    failed = [step for step, s in steps.items() if s["result"] is False]
    assert failed[0] == "kubesalt-orch-upgrade-worker-1-drained", master.failed_steps(steps)
    reason = json.dumps(steps[failed[0]])
    assert "drain of worker-1 did not finish; it was uncordoned" in reason
    assert "Cannot evict pod as it would violate the pod's disruption budget" in reason
    assert "PodDisruptionBudgets allowing no disruption: " in reason and "default/stuck" in reason
    for node_id in MASTERS:
        assert steps[f"kubesalt-orch-upgrade-{node_id}-control-plane"]["result"] is True
    installed = _installed(lab)
    assert _all_on({m: installed[m] for m in MASTERS}, target)
    assert _all_on({w: installed[w] for w in WORKERS}, KUBERNETES_PREVIOUS_MINOR)
    kubelets = _kubelets(lab)
    assert kubelets["worker-1"] == (KUBERNETES_PREVIOUS_MINOR, False)  # uncordoned


def test_with_the_budget_fixed_a_rerun_goes_on_and_finishes(pinned):
    lab = pinned
    target = lab.versions()["kubernetes"]
    workloads.kubectl(
        lab, "patch", "pdb", "stuck", "--type=merge", "-p", '{"spec": {"minAvailable": 0}}'
    )
    lifecycle.set_pillar(lab, {}, quiet)
    ok, steps = master.orchestrate(lab, ORCH, timeout=3600)
    assert ok, master.failed_steps(steps)
    # It went on where the first run stopped: no apiserver was upgraded again.
    assert not [s for s in steps if s.endswith("-apiserver")]
    assert _all_on(_installed(lab), target)
    assert _kubelets(lab) == {w: (target, False) for w in WORKERS}
    # Once every node runs the target, a run has nothing to do and takes no snapshot.
    taken = master.run_salt(lab, "master-1", "kubesalt_etcd_snapshot.list")["master-1"]
    ok, steps = master.orchestrate(lab, ORCH, timeout=600)
    assert ok and list(steps) == ["kubesalt-orch-upgrade-nothing-to-do"], steps
    assert steps["kubesalt-orch-upgrade-nothing-to-do"]["name"] == (
        f"every node runs Kubernetes {target}; nothing to do"
    )
    assert master.run_salt(lab, "master-1", "kubesalt_etcd_snapshot.list")["master-1"] == taken


def test_the_service_answered_throughout_within_its_budget(pinned):
    counted = steady_traffic.answers(pinned, "steady")
    asked = sum(c["ok"] + c["fail"] for c in counted.values())
    failed = sum(c["fail"] for c in counted.values())
    # Minutes of asking from both workers (five requests a second each). The budget keeps
    # one of two pods serving, and each pod serves on until kube-proxy has dropped it (a
    # preStop wait): the Service never went dark (no run of failures lasting 15 s) and at
    # most 1 in 100 requests failed (those sent while an endpoint change spread).
    assert asked > 500, counted
    assert failed <= asked // 100, counted
    assert all(c["longest_burst_seconds"] < 15 for c in counted.values()), counted


def test_the_upgrade_began_with_a_verified_etcd_snapshot(pinned):
    lab = pinned
    found = master.run_salt(lab, "master-1", "kubesalt_etcd_snapshot.list")["master-1"]
    assert isinstance(found, list) and found, found
    newest = found[0]
    assert newest["member"] == "master-1" and newest["keys"] > 100 and newest["revision"] > 0
    checked = master.run_salt(lab, "master-1", "kubesalt_etcd_snapshot.verify", newest["name"])
    assert checked["master-1"]["sha256"] == newest["sha256"], checked
    # A copy with one byte more does not pass as the snapshot its record names.
    directory = "/var/lib/kubesalt/etcd-snapshots"
    node = lab.node("master-1")
    forged = newest["name"].replace("master-1.db", "forged.db")
    containers.inside(lab, node, ["sh", "-c", (
        f"cd {directory} && cp {newest['name']} {forged} && printf x >> {forged} && "
        f"sed 's/{newest['name']}/{forged}/' {newest['name']}.sha256 > {forged}.sha256"
    )])  # fmt: skip
    refused = master.run_salt(lab, "master-1", "kubesalt_etcd_snapshot.verify", forged)
    assert "does not match the recorded" in str(refused["master-1"]), refused
    containers.inside(lab, node, ["sh", "-c", f"rm -f {directory}/{forged}*"])
    mode = containers.inside(lab, node, ["stat", "-c", "%a", f"{directory}/{newest['name']}"])
    assert mode.stdout.strip() == "600"
    schedule = master.run_salt(lab, "master-1", "schedule.list", "return_yaml=False")
    job = schedule["master-1"]["kubesalt-etcd-snapshot"]
    assert (job["function"], job["minutes"]) == ("kubesalt_etcd_snapshot.save", 60), job
    # The job itself takes one when run by the minion's scheduler.
    master.run_salt(lab, "master-1", "schedule.run_job", "kubesalt-etcd-snapshot")

    def newer():
        listed = master.run_salt(lab, "master-1", "kubesalt_etcd_snapshot.list")["master-1"]
        return listed[0]["name"] > newest["name"] and listed[0]

    taken = wait_until(newer, 60, interval=2, what="a snapshot taken by the schedule's job")
    assert taken["keys"] >= newest["keys"] and taken["sha256"] != newest["sha256"]


@pytest.mark.parametrize(
    ("version", "refusal"),
    [
        (KUBERNETES_PREVIOUS_MINOR, "kubesalt does not downgrade Kubernetes"),
        ("1.39.0", "skips a minor version (expected 1.38.x or 1.39.x"),
    ],
    ids=["downgrade", "skipped-minor"],
)
def test_a_downgrade_or_a_skipped_minor_is_refused_before_anything_changes(
    pinned, version, refusal
):
    lab = pinned
    target = lab.versions()["kubernetes"]
    master.override_pillar(lab, {"versions:kubernetes": version})
    try:
        ok, steps = master.orchestrate(lab, ORCH, timeout=600)
    finally:
        master.override_pillar(lab, {})
    assert not ok
    assert list(steps) == ["kubesalt-orch-upgrade-refused"], steps
    assert refusal in steps["kubesalt-orch-upgrade-refused"]["name"]
    assert "nothing was changed" in steps["kubesalt-orch-upgrade-refused"]["name"]
    assert _all_on(_installed(lab), target)


def test_a_highstate_after_the_upgrade_changes_nothing(pinned):
    applied = converge.apply(pinned, quiet, together=True)
    for node_id, summary in applied.items():
        assert (summary["failed"], summary["errors"], summary["changed"]) == (0, [], 0), (
            node_id,
            summary,
        )
    steady_traffic.stop(pinned, "steady")
    workloads.delete(pinned, "deployment/stuck", "poddisruptionbudget/stuck")
