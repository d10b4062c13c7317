"""etcd membership in the lab: three masters founded by their first highstate over TLS,
then master-3 removed and added back by `salt-run state.orchestrate` while a writer puts a
key every 100 ms, a refused removal, a join cut short after `add`, and a rebuilt host."""

import json

import pytest

from kubesalt_lab import containers, master, overview
from kubesalt_lab.writers import ProxiedApiWriter, Writer


@pytest.fixture(scope="module")
def lab_applied(lab_up, first_apply):
    lab, _ = lab_up
    assert all(s["failed"] == 0 for s in first_apply.values()), first_apply
    return lab


def _node(lab, node_id):
    return next(n for n in lab.nodes if n.id == node_id)


def _salt(lab, target, fun, *args, timeout=120):
    return master.run_salt(lab, target, fun, *args, timeout=timeout)[target]


def _members(lab, ask="master-1"):
    return {m["name"] or m["peer_urls"][0]: m for m in _salt(lab, ask, "kubesalt_etcd.members")}


def _health(lab, ask="master-1"):
    return _salt(lab, ask, "kubesalt_etcd.health")


def test_first_highstate_founds_a_three_member_tls_cluster(lab_applied):
    members = _members(lab_applied)
    assert sorted(members) == ["master-1", "master-2", "master-3"]
    for name, member in members.items():
        ip = _node(lab_applied, name).ip
        assert member["peer_urls"] == [f"https://{ip}:2380"]
        assert member["client_urls"] == [f"https://{ip}:2379"]
        assert member["is_learner"] is False
    health = _health(lab_applied)
    assert health["healthy"] and health["healthy_voting_members"] == 3
    shown = overview.status(lab_applied)["etcd"]
    assert sorted(row[0] for row in shown) == ["master-1", "master-2", "master-3"]
    assert [row[3] for row in shown].count("leader") == 1
    data_dir = containers.inside(
        lab_applied, _node(lab_applied, "master-2"), ["stat", "-c", "%a", "/var/lib/etcd"]
    )
    assert data_dir.stdout.strip() == "700"
    node = _node(lab_applied, "master-2")
    verify = containers.inside(
        lab_applied, node, ["systemd-analyze", "verify", "etcd.service"], check=False
    )
    assert verify.returncode == 0, verify.stderr
    shown = containers.inside(
        lab_applied,
        node,
        ["systemctl", "show", "etcd", "-p", "NoNewPrivileges,ProtectSystem,Restart,ReadWritePaths"],
    ).stdout.split()
    assert set(shown) >= {
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "Restart=on-failure",
        "ReadWritePaths=/var/lib/etcd",
    }
    # Since the host's last boot (an earlier module may have stopped and booted it).
    logged = containers.inside(
        lab_applied, node, ["journalctl", "-b", "-u", "etcd", "-o", "cat", "--no-pager"]
    ).stdout
    # Type=notify: systemd calls it started only once etcd said it is ready.
    assert "Started etcd.service" in logged


def _proxied_masters(lab, worker):
    """The masters ``worker``'s node-local apiserver proxy sends connections to."""
    text = containers.inside(
        lab, _node(lab, worker), ["cat", "/etc/kubernetes/apiserver-proxy.cfg"]
    ).stdout
    return [line.split()[1] for line in text.splitlines() if line.startswith("    server ")]


def test_orchestrated_remove_and_add_lose_no_write(lab_applied, tmp_path):
    # The hardest case on purpose: the master that leaves leads.
    assert _salt(lab_applied, "master-1", "kubesalt_etcd.move_leader", "master-3") == "master-3"
    workers = ("worker-1", "worker-2")
    with (
        Writer(lab_applied) as writer,
        ProxiedApiWriter(lab_applied, "worker-1", tmp_path / "writer") as proxied,
    ):
        ok, steps = master.orchestrate(
            lab_applied, "kubesalt.orch.remove_master", {"target": "master-3"}
        )
        assert ok, steps
        assert "handed over to master-" in json.dumps(steps)
        assert sorted(_members(lab_applied)) == ["master-1", "master-2"]
        # Every worker's proxy left it out (before its member was retired).
        for worker in workers:
            assert _proxied_masters(lab_applied, worker) == ["master-1", "master-2"], worker
        aside = containers.inside(
            lab_applied, _node(lab_applied, "master-3"),
            ["sh", "-c", "ls -d /var/lib/etcd.removed-*/member"],
        )  # fmt: skip
        assert aside.returncode == 0
        ok, steps = master.orchestrate(
            lab_applied, "kubesalt.orch.add_master", {"target": "master-3"}
        )
        assert ok, steps
        for worker in workers:
            assert _proxied_masters(lab_applied, worker) == [
                "master-1", "master-2", "master-3"
            ], worker  # fmt: skip
    summary = writer.summary
    assert summary["puts"] > 50, json.dumps(summary)
    assert summary["failed_puts"] == 0 and summary["missing"] == 0, json.dumps(summary)
    assert _health(lab_applied)["healthy_voting_members"] == 3
    # Through a worker's proxy, no create failed while the masters came and went (a
    # reload keeps the connections to the masters that stay).
    through = proxied.summary
    assert through["acknowledged"] > 50, through
    assert through["missing"] == 0, through
    # Every create got an answer from an apiserver: no connection through the proxy failed.
    # (An apiserver may refuse one while etcd's leadership moves: it says so.)
    unanswered = through["failed_creates"] - sum(through["refused_by_apiserver"].values())
    assert unanswered == 0, through
    assert through["failed_creates"] <= 3, through


def test_removing_two_of_three_is_refused(lab_applied):
    ok, _ = master.orchestrate(lab_applied, "kubesalt.orch.remove_master", {"target": "master-3"})
    assert ok
    ok, steps = master.orchestrate(
        lab_applied, "kubesalt.orch.remove_master", {"target": "master-2"}
    )
    assert not ok
    assert "refusing to remove master-2" in json.dumps(steps)
    assert sorted(_members(lab_applied)) == ["master-1", "master-2"]
    ok, steps = master.orchestrate(lab_applied, "kubesalt.orch.add_master", {"target": "master-3"})
    assert ok, steps


def test_a_join_cut_short_after_add_is_finished_by_the_next_run(lab_applied):
    ok, _ = master.orchestrate(lab_applied, "kubesalt.orch.remove_master", {"target": "master-3"})
    assert ok
    # A run that died right after `add`: the learner is listed, its etcd never started.
    _salt(lab_applied, "master-1", "kubesalt_etcd.add", "master-3", "https://198.18.0.13:2380")
    stale = _members(lab_applied)["https://198.18.0.13:2380"]
    assert stale["is_learner"] and stale["name"] == ""
    applied = _salt(lab_applied, "master-3", "state.apply", "kubesalt.etcd", timeout=300)
    joined = next(s for s in applied.values() if s["__id__"] == "kubesalt-etcd-member-present")
    assert joined["result"] is True, joined["comment"]
    assert set(joined["changes"]) == {"started", "promoted"}
    assert _health(lab_applied)["healthy_voting_members"] == 3


def test_a_sigkilled_member_whose_disk_is_lost_is_replaced(lab_applied):
    node = _node(lab_applied, "master-3")
    containers.inside(lab_applied, node, ["systemctl", "kill", "-s", "KILL", "etcd"])
    containers.inside(lab_applied, node, ["systemctl", "stop", "etcd"])
    containers.inside(lab_applied, node, ["sh", "-c", "rm -rf /var/lib/etcd/member"])
    old_id = _members(lab_applied)["master-3"]["id"]
    ok, steps = master.orchestrate(
        lab_applied, "kubesalt.orch.replace_master", {"dead": "master-3", "target": "master-3"}
    )
    assert ok, steps
    members = _members(lab_applied)
    assert members["master-3"]["id"] != old_id and not members["master-3"]["is_learner"]
    assert _health(lab_applied)["healthy_voting_members"] == 3
