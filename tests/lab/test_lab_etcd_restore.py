"""etcd restored from one snapshot after its quorum is lost for good: two masters' etcd
data destroyed, the cluster brought back by ``kubesalt.orch.etcd_restore`` with every
object written before the snapshot, while the workers' pods keep running and serving.

The objects: ConfigMaps written before the snapshot (they must come back) and after it
(they are what a restore loses, the RPO). The pods: a Deployment behind a Service and an
asker on every worker (``steady_traffic``); their pods and containers must be the same
before and after, and the Service must answer through the outage (kube-proxy's rules stay
in place while no apiserver answers)."""

import concurrent.futures
import re
import time

import pytest

from kubesalt_lab import containers, converge, etcd_loss, master, steady_traffic, workloads
from kubesalt_lab.system import wait_until
from tests.lab.conftest import quiet

MASTERS = ("master-1", "master-2", "master-3")
LOST = ("master-2", "master-3")
NAMESPACE = "restore-proof"
BEFORE, AFTER = 30, 10
ORCH = "kubesalt.orch.etcd_restore"


def _salt(lab, target, fun, *args, timeout=120):
    return master.run_salt(lab, target, fun, *args, timeout=timeout).get(target)


def _running(lab):
    """``{pod: (uid, node, [(container, containerID, startedAt)])}`` of the served
    Deployment and the askers."""
    running = {}
    for app in ("restored", "restored-askers"):
        for pod in workloads.get(lab, "pods", "-l", f"app={app}")["items"]:
            statuses = pod["status"].get("containerStatuses") or []
            running[pod["metadata"]["name"]] = (
                pod["metadata"]["uid"],
                pod["spec"]["nodeName"],
                sorted(
                    (
                        s["name"],
                        s.get("containerID"),
                        (s["state"].get("running") or {}).get("startedAt"),
                    )
                    for s in statuses
                ),
            )
    return running


def _member_ids(lab):
    return sorted(m["id"] for m in _salt(lab, "master-1", "kubesalt_etcd.members"))


def _repairs_since(lab, node, since):
    """The repairs (restarts, re-applies) of etcd and kube-apiserver on ``node`` since the
    epoch second ``since``."""
    attempts = _salt(lab, node, "kubesalt_heal.history", "last=200")
    assert isinstance(attempts, list), attempts
    return [
        a for a in attempts
        if a["unit"] in ("etcd.service", "kube-apiserver.service")
        and a["action"] in ("restart", "reapply") and a["epoch"] >= since
    ]  # fmt: skip


@pytest.fixture(scope="module")
def prepared(cluster):
    """The workload running, ConfigMaps before a snapshot and after it: the snapshot's
    record and the state of the cluster right before the loss."""
    lab = cluster
    workloads.kubectl(lab, "create", "namespace", NAMESPACE)
    steady_traffic.start(lab, "restored")
    etcd_loss.write(lab, NAMESPACE, "before", BEFORE)
    record = _salt(lab, "master-1", "kubesalt_etcd_snapshot.save", timeout=300)
    assert isinstance(record, dict) and record["sha256"], record
    etcd_loss.write(lab, NAMESPACE, "after", AFTER)
    yield {"lab": lab, "snapshot": record, "members": _member_ids(lab), "pods": _running(lab)}
    if etcd_loss.api_serves(lab):
        steady_traffic.stop(lab, "restored")
        workloads.kubectl(lab, "delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_a_restore_while_etcd_has_a_quorum_is_refused_and_changes_nothing(prepared):
    lab, snapshot = prepared["lab"], prepared["snapshot"]
    ok, steps = master.orchestrate(lab, ORCH, {"snapshot": snapshot["name"]})
    assert not ok
    (refused,) = steps.values()
    assert "still has a quorum (3 of 3 voting members healthy)" in refused["name"]
    assert "force" in refused["name"]
    assert _member_ids(lab) == prepared["members"]
    assert len(etcd_loss.names(lab, NAMESPACE)) == BEFORE + AFTER + 1  # kube-root-ca.crt


def test_a_snapshot_with_another_sha256_is_refused_and_changes_nothing(prepared):
    lab, snapshot = prepared["lab"], prepared["snapshot"]
    wrong = "0" * 64
    pillar = {"snapshot": snapshot["name"], "sha256": wrong, "force": True}
    ok, steps = master.orchestrate(lab, ORCH, pillar)
    assert not ok
    (refused,) = steps.values()
    assert f"has sha256 {snapshot['sha256']}, not the expected {wrong}" in refused["name"]
    ok, steps = master.orchestrate(lab, ORCH, {"snapshot": "backup.tar"})
    (refused,) = steps.values()
    assert "pillar key snapshot: expected a snapshot file name" in refused["name"]
    assert _member_ids(lab) == prepared["members"]


def test_the_snapshot_is_offered_only_to_holders_of_an_etcd_certificate(prepared):
    lab, name = prepared["lab"], prepared["snapshot"]["name"]
    offered = _salt(lab, "master-1", "kubesalt_etcd_restore.offer", name)
    try:
        url = offered["url"]
        # A worker, with no certificate and then with its kubelet's (the cluster CA's).
        probe = (
            "import ssl, sys, urllib.request\n"
            "c = ssl.create_default_context(); c.check_hostname = False\n"
            "c.verify_mode = ssl.CERT_NONE\n"
            "if len(sys.argv) > 2: c.load_cert_chain(sys.argv[2], sys.argv[3])\n"
            "try:\n"
            "    urllib.request.urlopen(sys.argv[1], context=c, timeout=10).read(16)\n"
            "    print('served')\n"
            "except Exception as err:\n"
            "    print('refused', type(err).__name__, err)\n"
        )
        pki = "/etc/kubernetes/pki"
        for extra in ([], [f"{pki}/kubelet-client.crt", f"{pki}/kubelet-client.key"]):
            said = containers.inside(
                lab, lab.node("worker-1"), ["python3", "-c", probe, url, *extra]
            ).stdout
            assert said.startswith("refused"), (extra, said)
        # Another master takes it with its etcd peer certificate, checked by sha256.
        fetched = _salt(
            lab, "master-2", "kubesalt_etcd_restore.fetch", "master-1", name,
            prepared["snapshot"]["sha256"],
        )  # fmt: skip
        assert fetched["sha256"] == prepared["snapshot"]["sha256"], fetched
    finally:
        _salt(lab, "master-1", "kubesalt_etcd_restore.withdraw")


def test_two_masters_losing_their_etcd_data_are_restored_from_the_snapshot(prepared):
    lab, snapshot = prepared["lab"], prepared["snapshot"]
    with concurrent.futures.ThreadPoolExecutor(len(LOST)) as pool:  # both disks at once
        list(pool.map(lambda node: etcd_loss.destroy_member_data(lab, node), LOST))
    lost_at = time.monotonic()
    wait_until(lambda: not etcd_loss.api_serves(lab), 60, interval=1, what="the apiservers failing")

    # etcd started on a master whose data is gone (a reboot, an apiserver's start) finds
    # no peer in its member list and exits: it does not rejoin under its old identity.
    two = lab.node("master-2")
    containers.inside(lab, two, ["systemctl", "start", "etcd"], check=False, timeout=120)
    wait_until(lambda: etcd_loss.etcd_state(lab, "master-2") != "active", 60, interval=1,
               what="etcd on master-2 exiting")  # fmt: skip
    # (It leaves an empty member/snap/db behind, and no write-ahead log.)
    held = containers.inside(lab, two, ["find", "/var/lib/etcd", "-name", "*.wal"]).stdout
    assert held.strip() == "", held
    said = containers.inside(
        lab, two, ["journalctl", "-u", "etcd", "-n", "30", "--no-pager"]
    ).stdout
    assert "cannot fetch cluster info from peer urls" in said, said[-2000:]
    # A highstate of it does not found a second, empty cluster either.
    states = _salt(lab, "master-2", "state.sls", "kubesalt.etcd", "queue=16", timeout=300)
    assert isinstance(states, dict), states
    member = next(s for k, s in states.items() if "kubesalt-etcd-member-present" in k)
    assert member["result"] is False and "lost its quorum" in member["comment"], member
    assert "kubesalt.orch.etcd_restore" in member["comment"]
    assert etcd_loss.etcd_state(lab, "master-2") != "active"

    started, started_epoch = time.monotonic(), time.time()
    ok, steps = master.orchestrate(lab, ORCH, {"snapshot": snapshot["name"]}, timeout=1200)
    assert ok, master.failed_steps(steps)
    recovered_at = time.monotonic()
    # Repairs were paused on the masters: nothing restarted what the restore kept stopped
    # (the apiservers were killed when they did not stop in time).
    for node in MASTERS:
        assert _repairs_since(lab, node, started_epoch) == [], node
    print({
        "restore_seconds": round(recovered_at - started, 1),
        "down_seconds": round(recovered_at - lost_at, 1),
        "steps": {k.removeprefix("kubesalt-orch-etcd-restore-"): s["seconds"]
                  for k, s in steps.items()},
    })  # fmt: skip

    # Every member runs, healthy, in a new cluster.
    health = _salt(lab, "master-1", "kubesalt_etcd.health")
    assert (health["healthy"], health["healthy_voting_members"]) == (True, 3), health
    members = _salt(lab, "master-1", "kubesalt_etcd.members")
    assert sorted(m["name"] for m in members) == list(MASTERS)
    assert not set(_member_ids(lab)) & set(prepared["members"])
    # What each data dir held was moved aside, not deleted.
    restored = steps["kubesalt-orch-etcd-restore-members-restored"]["changes"]["ret"]
    for node in MASTERS:
        aside = restored[node]["moved_aside"]
        assert re.search(r"removed-\d{8}T\d{6}Z$", aside), restored[node]
        kept = containers.inside(lab, lab.node(node), ["find", aside, "-name", "*.wal"])
        # master-1's whole member, its log included; the others' held no log any more.
        assert bool(kept.stdout.strip()) == (node == "master-1"), (node, kept.stdout)

    # What was written before the snapshot is back; what came after is what was lost.
    assert etcd_loss.names(lab, NAMESPACE, "before-") == sorted(
        f"before-{n}" for n in range(BEFORE)
    )
    assert etcd_loss.names(lab, NAMESPACE, "after-") == []


def test_the_workers_pods_kept_running_and_serving_through_the_restore(prepared):
    lab = prepared["lab"]
    assert _running(lab) == prepared["pods"]
    counted = steady_traffic.answers(lab, "restored")
    for node, seen in counted.items():
        assert seen["restarts"] == 0, (node, seen)
        assert seen["ok"] > 100, (node, seen)
        assert seen["fail"] <= seen["ok"] // 100, (node, seen)


def test_the_restored_cluster_serves_and_converges(prepared):
    lab = prepared["lab"]
    workloads.apply(lab, etcd_loss.configmap(NAMESPACE, "after-restore"))
    assert etcd_loss.names(lab, NAMESPACE, "after-restore") == ["after-restore"]
    assert wait_until(lambda: workloads.ready_nodes(lab), 60) == ["worker-1", "worker-2"]
    # A new pod is scheduled, started and served (the controllers and kubelets listed the
    # restored objects afresh).
    workloads.kubectl(lab, "scale", "deployment/restored", "--replicas=3")
    pods = workloads.wait_ready(lab, "app=restored", 3, timeout=120)
    assert all(p["ip"] for p in pods), pods
    workloads.kubectl(lab, "scale", "deployment/restored", "--replicas=2")
    again = converge.apply(lab, quiet, together=True)
    for node_id, result in again.items():
        assert (result["failed"], result["errors"], result["changed"]) == (0, [], 0), (
            node_id,
            result,
        )
