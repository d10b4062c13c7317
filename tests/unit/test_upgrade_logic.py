"""The Kubernetes upgrade's decisions: the highstate's guard, the version skew policy, the
pre-flight, the plan and the orchestration rendered from it, and a failed drain's reason."""

import copy
import itertools
import json

import jinja2
import pytest
import yaml

import kubesalt_core.pillar
import kubesalt_core.pillar_checks
import kubesalt_core.pillar_schema
import kubesalt_core.unit
import kubesalt_core.upgrade as up
from kubesalt_lab.pillar import lab_config
from kubesalt_lab.steady_traffic import longest_burst
from tests.conftest import STATES_DIR

MASTER = {
    "kube-apiserver": "1.36.3",
    "kube-controller-manager": "1.36.3",
    "kube-scheduler": "1.36.3",
    "kubectl": "1.36.3",
}
WORKER = {"kubelet": "1.36.3", "kube-proxy": "1.36.3"}


def test_versions_are_read_as_the_binaries_print_them():
    assert up.parse("v1.37.2") == (1, 37, 2)
    assert up.reported_version("Kubernetes v1.36.3\n") == "1.36.3"
    assert up.reported_version("Client Version: v1.37.2\nKustomize Version: v5.7.1") == "1.37.2"
    assert up.reported_version("flag provided but not defined") is None
    assert up.version_argv("/usr/local/bin/kubectl", "kubectl")[1:] == ["version", "--client"]
    with pytest.raises(ValueError):
        up.parse("latest")


def test_a_highstate_refuses_a_version_change_and_names_the_way():
    problems = up.held("worker-1", WORKER, "1.37.2")
    assert len(problems) == 1
    (message,) = problems
    assert "worker-1" in message and "kube-proxy, kubelet 1.36.3" in message
    assert "1.37.2" in message and "kubesalt.orch.upgrade" in message
    assert "Nothing was changed" in message


def test_a_patch_change_is_held_too():
    assert up.held("worker-1", {"kubelet": "1.37.0"}, "1.37.2")


def test_what_does_not_hold_a_run():
    assert up.held("worker-1", {"kubelet": None, "kube-proxy": None}, "1.37.2") == []  # first run
    assert up.held("worker-1", {"kubelet": "1.37.2"}, "1.37.2") == []
    assert up.held("w", WORKER, "1.37.2", {"version": "1.37.2"}) == []


def test_an_authorization_for_another_version_holds():
    (message,) = up.held("w", WORKER, "1.37.2", {"version": "1.37.1"})
    assert "authorized Kubernetes 1.37.1" in message and "1.37.2" in message


def test_the_scope_of_a_step():
    assert up.scope(None) is None
    assert up.scope({"version": "1.37.2"}) is None
    assert up.scope({"version": "1.37.2", "components": ["kube-apiserver"]}) == ["kube-apiserver"]


def test_one_minor_at_a_time_and_never_down():
    assert up.skew_problems("1.37.2", {"m": MASTER, "w": WORKER}) == []
    assert up.skew_problems("1.36.9", {"m": MASTER}) == []
    (skip,) = up.skew_problems("1.38.0", {"w": {"kubelet": "1.36.3"}})
    assert "skips a minor version" in skip and "expected 1.37.x or 1.38.x" in skip
    (down,) = up.skew_problems("1.36.2", {"w": {"kubelet": "1.36.3"}})
    assert "does not downgrade" in down and "w: kubelet is 1.36.3" in down


def test_a_kubelet_newer_than_an_apiserver_is_refused():
    versions = {"m": {"kube-apiserver": "1.36.3"}}
    (problem,) = up.skew_problems("1.37.2", versions, {"w": "1.37.2"})
    assert "w: kubelet 1.37.2 is newer than the oldest apiserver (1.36.3)" in problem
    assert up.skew_problems("1.37.2", versions, {"w": "1.36.3"}) == []


def test_preflight_wants_every_minion_node_and_member():
    expected = {"master-1": ["master"], "worker-1": ["worker"], "router-1": ["router"]}
    healthy = {"voting_members": 3, "healthy_voting_members": 3}
    cluster = {"worker-1": {"ready": True}}
    assert up.preflight(expected, ["master-1", "worker-1", "router-1"], cluster, healthy) == []
    found = up.preflight(
        {**expected, "worker-2": ["worker"]},
        ["master-1", "worker-1"],
        {"worker-1": {"ready": False}},
        {"voting_members": 3, "healthy_voting_members": 2},
    )
    assert found == [
        "not answering: router-1, worker-2 (every node in pillar must answer before an upgrade)",
        "worker-2: a worker in pillar without a Node in the cluster",
        "worker-1: Node is not Ready (every node must be Ready)",
        "etcd: 2 of 3 voting members healthy (every member must be healthy before an upgrade)",
    ]


def _nodes(**overrides):
    nodes = [
        up.Node("master-1", ["master"], dict(MASTER)),
        up.Node("master-2", ["master"], dict(MASTER)),
        up.Node("worker-1", ["worker"], dict(WORKER)),
        up.Node("worker-2", ["worker"], dict(WORKER)),
        up.Node("worker-3", ["worker"], dict(WORKER)),
        up.Node("router-1", ["router"], {}),
    ]
    for node in nodes:
        for key, value in overrides.get(node.id, {}).items():
            setattr(node, key, value)
    return nodes


def test_the_plan_orders_apiservers_then_masters_then_worker_batches():
    plan = up.plan("1.37.2", _nodes(), 2)
    assert plan.apiservers == ["master-1", "master-2"]
    assert plan.masters == ["master-1", "master-2"]
    assert plan.batches == [["worker-1", "worker-2"], ["worker-3"]]
    assert plan.current == []  # the router runs no Kubernetes component
    assert plan.steps()[0] == "master-1: kube-apiserver to 1.37.2, then wait for /readyz"
    assert "batch 2: worker-3: cordon, drain, upgrade to 1.37.2, wait Ready, uncordon" in (
        plan.steps()
    )


def test_a_rerun_goes_on_from_where_the_cluster_is():
    done = {b: "1.37.2" for b in MASTER}
    half = {**MASTER, "kube-apiserver": "1.37.2"}
    plan = up.plan(
        "1.37.2",
        _nodes(
            **{
                "master-1": {"versions": done},
                "master-2": {"versions": half},
                "worker-1": {
                    "versions": {"kubelet": "1.37.2", "kube-proxy": "1.37.2"},
                    "unschedulable": True,
                    "cordoned_by_upgrade": True,
                },
            }
        ),
        1,
    )
    assert plan.apiservers == []
    assert plan.masters == ["master-2"]
    assert plan.batches == [["worker-2"], ["worker-3"]]
    assert plan.uncordon == ["worker-1"]
    assert "master-1" in plan.current
    assert not plan.empty
    finished = up.plan("1.37.2", [up.Node("w", ["worker"], {"kubelet": "1.37.2"})], 1)
    assert finished.empty and finished.current == ["w"]


def test_a_failed_drain_says_which_pods_and_budgets():
    output = (
        "evicting pod web/app-7d9-abc\n"
        'error when evicting pods/"app-7d9-abc" -n "web" (will retry after 5s): Cannot evict '
        "pod as it would violate the pod's disruption budget.\n"
        'error when evicting pods/"app-7d9-abc" -n "web" (will retry after 5s): Cannot evict '
        "pod as it would violate the pod's disruption budget.\n"
        'error when evicting pods/"app-7d9-abc" -n "web": global timeout reached: 30s\n'
        'error: unable to drain node "worker-1" due to error: [global timeout reached: 30s]\n'
    )
    message = up.drain_failure("worker-1", output, [("web", "app")])
    assert message.startswith("drain of worker-1 did not finish; it was uncordoned")
    assert (
        "web/app-7d9-abc: Cannot evict pod as it would violate the pod's disruption budget., "
        "then global timeout reached: 30s;"
    ) in message
    assert "PodDisruptionBudgets allowing no disruption: web/app" in message
    bare = up.drain_failure("worker-1", "error: cannot delete Pods that declare no controller\n")
    assert bare.endswith("error: cannot delete Pods that declare no controller")


@pytest.fixture
def config():
    return copy.deepcopy(lab_config())


def _errors(config):
    return kubesalt_core.pillar_checks.errors(kubesalt_core.pillar_schema.validate(config))


def test_the_upgrade_settings_are_validated(config):
    assert _errors(config) == []
    config["upgrade"]["worker_batch"] = 0
    config["upgrade"]["drain_timeout"] = "5m"
    found = " | ".join(map(str, _errors(config)))
    assert "kubesalt:upgrade:worker_batch: 0 is not a number of workers" in found
    assert "kubesalt:upgrade:drain_timeout: '5m' is not seconds" in found
    config["upgrade"] = {**config["upgrade"], "worker_batch": 3, "drain_timeout": 60}
    (problem,) = _errors(config)
    assert str(problem) == (
        "kubesalt:upgrade:worker_batch: 3 is more than the 2 workers in nodes; expected 1 to 2"
    )


# --- the orchestration rendered from a plan -------------------------------------------------


def _render(plan, nodes):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(STATES_DIR)), extensions=["jinja2.ext.do"]
    )
    env.filters["json"] = json.dumps
    calls = []

    def runner(name, **kwargs):
        calls.append((name, kwargs))
        return plan

    salt = {
        "pillar.get": lambda key, default=None: nodes if key == "kubesalt:nodes" else default,
        "saltutil.runner": runner,
    }
    text = env.get_template("kubesalt/orch/upgrade.sls").render(salt=salt)
    return yaml.safe_load(text), calls


def _plan(**fields):
    base = {
        "target": "1.37.2",
        "problems": [],
        "steps": ["..."],
        "apiservers": [],
        "masters": [],
        "batches": [],
        "uncordon": [],
        "empty": False,
        "roles": {
            "master-1": ["master"],
            "master-2": ["master"],
            "worker-1": ["worker"],
            "worker-2": ["worker"],
        },
        "settings": {"worker_batch": 1, "drain_timeout": 300, "ready_timeout": 300},
    }
    return {**base, **fields}


NODES = {
    "master-1": {"roles": ["master"]},
    "master-2": {"roles": ["master"]},
    "worker-1": {"roles": ["worker"]},
    "worker-2": {"roles": ["worker"]},
}


def test_the_orchestration_refuses_what_the_plan_refuses():
    states, calls = _render(_plan(problems=["worker-1: Node is not Ready"]), NODES)
    assert calls == [("kubesalt_upgrade.plan", {"master": "master-1"})]
    assert list(states) == ["kubesalt-orch-upgrade-refused"]
    (step,) = states["kubesalt-orch-upgrade-refused"]["test.fail_without_changes"]
    assert "nothing was changed: worker-1: Node is not Ready" in step["name"]


def test_the_orchestration_has_nothing_to_do_when_every_node_runs_the_target():
    states, _calls = _render(_plan(empty=True), NODES)
    assert list(states) == ["kubesalt-orch-upgrade-nothing-to-do"]
    (step,) = states["kubesalt-orch-upgrade-nothing-to-do"]["test.succeed_without_changes"]
    assert step["name"] == "every node runs Kubernetes 1.37.2; nothing to do"


def test_the_orchestration_steps_follow_the_plan_in_a_chain():
    plan = _plan(
        apiservers=["master-1", "master-2"],
        masters=["master-1", "master-2"],
        batches=[["worker-1", "worker-2"]],
    )
    states, _calls = _render(plan, NODES)
    ids = list(states)
    assert ids == [
        "kubesalt-orch-upgrade-plan",
        "kubesalt-orch-upgrade-etcd-snapshot",
        "kubesalt-orch-upgrade-master-1-apiserver",
        "kubesalt-orch-upgrade-master-1-apiserver-ready",
        "kubesalt-orch-upgrade-master-2-apiserver",
        "kubesalt-orch-upgrade-master-2-apiserver-ready",
        "kubesalt-orch-upgrade-master-1-control-plane",
        "kubesalt-orch-upgrade-master-2-control-plane",
        "kubesalt-orch-upgrade-worker-1-drained",
        "kubesalt-orch-upgrade-worker-2-drained",
        "kubesalt-orch-upgrade-batch-1",
        "kubesalt-orch-upgrade-worker-1-ready",
        "kubesalt-orch-upgrade-worker-1-uncordoned",
        "kubesalt-orch-upgrade-worker-2-ready",
        "kubesalt-orch-upgrade-worker-2-uncordoned",
    ]
    for before, after in itertools.pairwise(ids):
        (args,) = states[after].values()
        requires = next(a["require"] for a in args if "require" in a)
        assert requires == [{_kind(states[before]): before}]
        assert {"failhard": True} in args
    apiserver = dict(
        kv
        for a in states["kubesalt-orch-upgrade-master-1-apiserver"]["salt.state"]
        for kv in a.items()
    )
    assert apiserver["sls"] == "kubesalt.units"
    assert apiserver["pillar"] == {
        "kubesalt_upgrade": {"version": "1.37.2", "components": ["kube-apiserver"]}
    }
    batch = dict(
        kv for a in states["kubesalt-orch-upgrade-batch-1"]["salt.state"] for kv in a.items()
    )
    assert batch["tgt"] == "worker-1,worker-2" and batch["highstate"] is True
    assert batch["pillar"] == {"kubesalt_upgrade": {"version": "1.37.2"}}
    drain = dict(
        kv
        for a in states["kubesalt-orch-upgrade-worker-1-drained"]["salt.function"]
        for kv in a.items()
    )
    assert drain["name"] == "kubesalt_node.drain" and drain["tgt"] == "master-1"
    assert drain["arg"] == ["worker-1"] and drain["timeout"] == 420


def _kind(state):
    (function,) = state
    return function.split(".")[0]


def test_an_apiserver_ends_its_watches_when_it_stops():
    """Without it the HTTP server waits for open watches until its 60 s deadline: each
    apiserver step of an upgrade (and every restart) would take a minute."""
    config = copy.deepcopy(lab_config())
    config["paths"] = kubesalt_core.pillar.resolve_paths(config["paths"])
    rendered = kubesalt_core.unit.render(config, "master-1", "kube-apiserver")
    assert "--shutdown-watch-termination-grace-period=5s" in rendered.unit_text


def test_failures_close_together_make_one_burst():
    assert longest_burst([]) == 0
    assert longest_burst([100]) == 0
    assert longest_burst([615, 617, 620, 622, 616, 619]) == 7
    assert longest_burst([100, 101, 200, 204]) == 1  # 200 and 204 are 4 s apart
