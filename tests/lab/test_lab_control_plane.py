"""The control plane for real: on the three lab masters etcd, kube-apiserver, the scheduler,
the controller-manager and Typha, built from their modules and installed through
kubesalt_artifact, run and answer their own health checks; the cluster objects are applied to
the real apiservers; Typha initialises Calico's datastore with exactly kubesalt's RBAC; and
the apiservers keep serving while a master is replaced."""

import json

import pytest
import yaml

import kubesalt_core.components
from kubesalt_lab import containers, master, overview
from kubesalt_lab.writers import ApiWriter
from tests.lab.conftest import second_run

MASTERS = ("master-1", "master-2", "master-3")


@pytest.fixture(scope="module")
def lab_applied(lab_up, first_apply):
    lab, _ = lab_up
    assert all(s["failed"] == 0 and not s["errors"] for s in first_apply.values()), first_apply
    return lab


def _node(lab, node_id):
    return next(n for n in lab.nodes if n.id == node_id)


def _salt(lab, target, fun, *args, timeout=120):
    return master.run_salt(lab, target, fun, *args, timeout=timeout)[target]


def _kubectl(lab, *args, node="master-1", check=True):
    argv = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", *args]
    return containers.inside(lab, _node(lab, node), argv, check=check)


def test_every_master_component_is_active_and_answers_its_health_check(lab_applied):
    for node_id in MASTERS:
        answers = _salt(lab_applied, node_id, "kubesalt_unit.health")
        assert set(answers) == set(kubesalt_core.components.managed_units(["master"])), node_id
        for unit, answer in answers.items():
            assert answer["healthy"], (node_id, unit, answer)
        readyz = answers["kube-apiserver.service"]
        assert readyz["url"].endswith("/readyz") and readyz["detail"] == "200 ok"
        for unit in answers:
            logged = containers.inside(
                lab_applied,
                _node(lab_applied, node_id),
                ["journalctl", "-u", unit, "-o", "cat", "--no-pager", "-n", "5"],
            ).stdout
            assert logged.strip(), (node_id, unit)  # the component logs to the journal


def test_status_shows_each_components_own_health_and_the_leader_leases(lab_applied):
    shown = overview.status(lab_applied)
    health = {(node, unit): ok for node, unit, ok, _ in shown["health"]}
    for node_id in MASTERS:
        assert health[(node_id, "kube-apiserver.service")] == "yes"
        assert health[(node_id, "calico-typha.service")] == "yes"
    leases = dict(shown["leases"])
    for name in ("kube-scheduler", "kube-controller-manager"):
        assert leases[name].split("_")[0] in MASTERS, leases


def test_the_apiservers_kubelet_client_may_read_logs_and_metrics_of_kubelets(lab_applied):
    for subresource in ("log", "proxy", "stats", "metrics"):
        said = _kubectl(
            lab_applied,
            "auth", "can-i", "--as=kube-apiserver-kubelet-client",
            "get", "nodes", f"--subresource={subresource}",
        ).stdout  # fmt: skip
        assert said.strip() == "yes", subresource
    refused = _kubectl(
        lab_applied, "auth", "can-i", "--as=kube-apiserver-kubelet-client", "delete", "nodes",
        check=False,
    )  # fmt: skip
    assert refused.stdout.strip() == "no"


def test_the_cluster_objects_and_calicos_crds_are_applied(lab_applied):
    crds = _kubectl(lab_applied, "get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/ippools.crd.projectcalico.org" in crds
    bgp = json.loads(
        _kubectl(lab_applied, "get", "bgpconfiguration", "default", "-o", "json").stdout
    )
    assert bgp["spec"]["asNumber"] == 64512 and bgp["spec"]["nodeToNodeMeshEnabled"] is False
    peers = _kubectl(lab_applied, "get", "bgppeers", "-o", "name").stdout.split()
    assert peers == ["bgppeer.crd.projectcalico.org/router-router-1"]
    slice_ = json.loads(
        _kubectl(
            lab_applied, "get", "endpointslice", "-n", "kube-system",
            "calico-typha-kubesalt", "-o", "json",
        ).stdout
    )  # fmt: skip
    addresses = sorted(e["addresses"][0] for e in slice_["endpoints"])
    assert addresses == sorted(_node(lab_applied, m).ip for m in MASTERS)
    ingress = _kubectl(lab_applied, "get", "ingressclass", "-o", "name").stdout.split()
    assert ingress == ["ingressclass.networking.k8s.io/nginx"]
    # kubesalt creates no Node: each worker's kubelet registers its own.
    shown = _kubectl(lab_applied, "get", "nodes", "--show-managed-fields", "-o", "json")
    nodes = json.loads(shown.stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["worker-1", "worker-2"]
    for node in nodes:
        managers = {f["manager"] for f in node["metadata"].get("managedFields", [])}
        assert "kubelet" in managers and "kubesalt" not in managers, managers


def test_typha_initialised_the_datastore_and_syncs_with_kubesalts_rights(lab_applied):
    info = json.loads(
        _kubectl(lab_applied, "get", "clusterinformation", "default", "-o", "json").stdout
    )
    assert info["spec"]["datastoreReady"] is True and info["spec"]["clusterGUID"]
    tiers = _kubectl(lab_applied, "get", "tiers", "-o", "name").stdout.split()
    assert "tier.crd.projectcalico.org/default" in tiers
    for node_id in MASTERS:
        logged = containers.inside(
            lab_applied,
            _node(lab_applied, node_id),
            ["journalctl", "-u", "calico-typha", "-o", "cat", "--no-pager"],
        ).stdout
        # Every syncer Typha serves listed every resource type it watches.
        assert "All watchers have sync'd data" in logged, node_id
        for refused in ("forbidden", "Unauthorized"):
            assert refused not in logged.split("Initializing the datastore")[-1], node_id


def test_test_mode_shows_kubectls_real_diff_and_the_apply_restores_the_object(lab_applied):
    _kubectl(
        lab_applied, "label", "--overwrite", "clusterrole", "kubesalt:calico-typha",
        "app.kubernetes.io/managed-by=someone-else",
    )  # fmt: skip
    ret = _salt(
        lab_applied, "master-1", "state.sls_id", "kubesalt-cluster-objects-applied",
        "kubesalt.cluster_objects", "test=True",
    )  # fmt: skip
    (state,) = [s for s in ret.values() if s["__id__"] == "kubesalt-cluster-objects-applied"]
    assert state["result"] is None
    assert "managed-by: someone-else" in state["changes"]["diff"]
    assert "managed-by: kubesalt" in state["changes"]["diff"]
    ret = _salt(
        lab_applied, "master-1", "state.sls_id", "kubesalt-cluster-objects-applied",
        "kubesalt.cluster_objects",
    )  # fmt: skip
    (state,) = [s for s in ret.values() if s["__id__"] == "kubesalt-cluster-objects-applied"]
    assert state["result"] is True and state["changes"]["applied"]
    role = yaml.safe_load(
        _kubectl(lab_applied, "get", "clusterrole", "kubesalt:calico-typha", "-o", "yaml").stdout
    )
    assert role["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubesalt"


def test_an_object_the_apiserver_refuses_fails_with_its_message(lab_applied):
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: kube-system}\ndata: 5\n"
    # (Positional: the salt CLI reads `key=value` on one line only.)
    said = str(_salt(lab_applied, "master-1", "kubesalt_manifest.apply", bad))
    assert "kubectl apply failed: Error from server" in said and ".data: expected map" in said


def test_a_second_highstate_changes_nothing(lab_applied, first_apply):
    again = second_run(lab_applied, first_apply)
    for node_id, summary in again.items():
        assert (summary["changed"], summary["failed"], summary["errors"]) == (0, 0, []), node_id


def test_the_apiservers_keep_serving_while_a_master_is_replaced(lab_applied):
    node = _node(lab_applied, "master-3")
    with ApiWriter(lab_applied) as writer:
        # master-3 is lost: its control plane gone, its etcd killed and its disk wiped.
        for unit in ("calico-typha", "kube-controller-manager", "kube-scheduler"):
            containers.inside(lab_applied, node, ["systemctl", "stop", unit])
        containers.inside(lab_applied, node, ["systemctl", "kill", "-s", "KILL", "kube-apiserver"])
        containers.inside(lab_applied, node, ["systemctl", "kill", "-s", "KILL", "etcd"])
        containers.inside(lab_applied, node, ["systemctl", "stop", "etcd", "kube-apiserver"])
        containers.inside(lab_applied, node, ["sh", "-c", "rm -rf /var/lib/etcd/member"])
        ok, steps = master.orchestrate(
            lab_applied,
            "kubesalt.orch.replace_master",
            {"dead": "master-3", "target": "master-3"},
        )
        assert ok, master.failed_steps(steps)
    summary = writer.summary
    assert summary["creates"] > 50, json.dumps(summary)
    assert summary["failed_creates"] == 0 and summary["missing"] == 0, json.dumps(summary)
    # Every apiserver took writes (a client spreads them; master-3 before it was lost).
    assert len(summary["by_server"]) == 3, summary
    answers = _salt(lab_applied, "master-3", "kubesalt_unit.health")
    assert all(a["healthy"] for a in answers.values()), answers
