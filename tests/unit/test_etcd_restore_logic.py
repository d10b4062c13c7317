"""A restore from one snapshot: when it is refused, and the new cluster each member is
restored into."""

import copy
import itertools
import json
from datetime import UTC, datetime

import jinja2
import yaml

import kubesalt_core.etcd_restore as restore
from kubesalt_lab.pillar import lab_config
from tests.conftest import STATES_DIR

SNAPSHOT = {"name": "lab-20261204T220000Z-master-1.db", "sha256": "a" * 64, "revision": 9}
LOST = {"healthy": False, "voting_members": 3, "healthy_voting_members": 1}
ALIVE = {"healthy": True, "voting_members": 3, "healthy_voting_members": 2}


def test_a_restore_goes_ahead_only_without_a_quorum_and_with_the_right_snapshot():
    assert restore.refusal(LOST, SNAPSHOT, "a" * 64) is None
    assert restore.refusal(None, SNAPSHOT, None) is None  # no member answers at all
    alive = restore.refusal(ALIVE, SNAPSHOT, None)
    assert "still has a quorum (2 of 3" in alive and "force: true" in alive
    assert restore.refusal(ALIVE, SNAPSHOT, None, force=True) is None
    wrong = restore.refusal(LOST, SNAPSHOT, "b" * 64)
    assert wrong.endswith(f"has sha256 {'a' * 64}, not the expected {'b' * 64}")
    assert "no verified snapshot" in restore.refusal(LOST, {}, None)


def test_every_member_is_restored_into_one_new_cluster():
    config = copy.deepcopy(lab_config())
    cluster = restore.initial_cluster(config)
    assert cluster == (
        "master-1=https://198.18.0.11:2380,master-2=https://198.18.0.12:2380,"
        "master-3=https://198.18.0.13:2380"
    )
    token = restore.new_token("lab", datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC))
    assert token == "kubesalt-lab-restored-20261205T010203Z"
    argv = restore.restore_argv(
        "/usr/local/bin/etcdutl", "/s.db", "master-2", "https://198.18.0.12:2380",
        cluster, token, "/var/lib/etcd.restored",
    )  # fmt: skip
    assert argv[:4] == ["/usr/local/bin/etcdutl", "snapshot", "restore", "/s.db"]
    assert "--name=master-2" in argv and f"--initial-cluster-token={token}" in argv
    assert "--data-dir=/var/lib/etcd.restored" in argv
    assert argv[-2:] == [f"--bump-revision={restore.REVISION_BUMP}", "--mark-compacted"]


MASTERS = ["master-1", "master-2", "master-3"]


def test_bad_arguments_are_named_with_what_was_expected():
    name = SNAPSHOT["name"]
    assert restore.input_problems(MASTERS, name, "master-1", None) == []
    (bad,) = restore.input_problems(MASTERS, "backup.tar", "master-1", None)
    assert bad.startswith("pillar key snapshot: expected a snapshot file name")
    (elsewhere,) = restore.input_problems(MASTERS, name, "worker-1", None)
    assert "pillar key source: expected the master that holds" in elsewhere
    assert "got 'worker-1'" in elsewhere
    (short,) = restore.input_problems(MASTERS, name, "master-1", "abc")
    assert short == "pillar key sha256: expected 64 hex digits, got 'abc'"


def test_every_master_must_answer_and_have_etcdutl():
    assert restore.reach_problems(MASTERS, MASTERS, []) == []
    silent, tool = restore.reach_problems(MASTERS, ["master-1", "master-2"], ["master-2"])
    assert silent.startswith("not answering: master-3")
    assert tool.startswith("no etcdutl on master-2")


def _render(plan):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(STATES_DIR)), extensions=["jinja2.ext.do"]
    )
    env.filters["json"] = json.dumps
    salt = {
        "pillar.get": lambda key, default=None: default,
        "saltutil.runner": lambda name, **kwargs: plan,
    }
    text = env.get_template("kubesalt/orch/etcd_restore.sls").render(salt=salt)
    return yaml.safe_load(text)


def test_the_orchestration_refuses_with_the_reasons_and_changes_nothing():
    states = _render({"problems": ["not answering: master-3", "no etcdutl on master-2"]})
    (only,) = states.values()
    (step,) = only["test.fail_without_changes"]
    assert step["name"] == (
        "the restore of etcd is refused and nothing was changed: not answering: master-3; "
        "no etcdutl on master-2"
    )


def test_the_orchestration_stops_the_apiservers_first_and_restores_every_member():
    token = "kubesalt-lab-restored-20261205T010203Z"
    others = MASTERS[1:]
    plan = {
        "problems": [], "snapshot": SNAPSHOT["name"], "source": "master-1", "sha256": "a" * 64,
        "revision": 9, "keys": 120, "masters": MASTERS, "others": others, "token": token,
        "forced": False,
        "steps": restore.steps(SNAPSHOT["name"], "master-1", others, MASTERS, token),
    }  # fmt: skip
    states = _render(plan)
    assert [sid.removeprefix("kubesalt-orch-etcd-restore-") for sid in states] == [
        "plan", "kube-apiserver-repairs-paused", "etcd-repairs-paused", "apiservers-stopped",
        "offered", "fetched", "offer-withdrawn", "members-restored", "etcd-started",
        "etcd-healthy", "apiservers-started", "apiservers-ready",
        "kube-apiserver-repairs-resumed", "etcd-repairs-resumed", "masters-applied",
    ]  # fmt: skip
    steps = {sid.removeprefix("kubesalt-orch-etcd-restore-"):
             dict(kv for a in next(iter(s.values())) for kv in a.items())
             for sid, s in states.items()}  # fmt: skip
    assert (
        steps["plan"]["name"]
        .splitlines()[0]
        .startswith(f"etcd restored from {SNAPSHOT['name']} (revision 9, 120 keys")
    )
    assert steps["kube-apiserver-repairs-paused"]["arg"] == [
        "kube-apiserver.service", "kubesalt.orch.etcd_restore", 3600,
    ]  # fmt: skip
    assert steps["offered"]["tgt"] == "master-1"
    assert steps["fetched"]["tgt"] == "master-2,master-3"
    assert steps["fetched"]["arg"] == ["master-1", SNAPSHOT["name"], "a" * 64]
    assert steps["members-restored"]["tgt"] == "master-1,master-2,master-3"
    assert steps["members-restored"]["arg"] == [SNAPSHOT["name"], token]
    # Each step waits for the one before and stops the run when it fails.
    ids = list(states)
    for before, after in itertools.pairwise(ids):
        assert steps[after.removeprefix("kubesalt-orch-etcd-restore-")]["failhard"] is True
        (required,) = steps[after.removeprefix("kubesalt-orch-etcd-restore-")]["require"]
        assert next(iter(required.values())) == before
    # A function run on several masters fails when one of them does not answer.
    assert steps["members-restored"]["expect_minions"] is True
