"""etcd membership through the kubesalt_etcd modules, run by a real minion (master-1) against
real etcd members on 127.0.0.1 with mutual TLS from master-1's own PKI.

Every member serves with master-1's etcd-server and etcd-peer certificates (they carry
127.0.0.1); the module talks as kube-apiserver-etcd-client. The host has no systemd, so
here etcd processes are started by the test; the steps where the state starts etcd itself
(the add path, a relocation) run in the lab tier (tests/lab/test_lab_etcd.py).
"""

import json
import shutil
import subprocess
import sys

import pytest

from kubesalt_lab import local_etcd as etcd
from tests.conftest import REPO

MINION = "master-1"
# The state never starts this unit here: a member that must be started fails loudly.
NO_SERVICE = "kubesalt-test-no-such-unit"


@pytest.fixture(scope="module")
def pki(synced, salt_cli, node_roots):
    """master-1's certificates; its whole tree goes again afterwards if this made it (the
    highstate tests expect a node that never ran)."""
    made_here = not (node_roots / MINION).exists()
    ret = salt_cli.run("state.apply", "kubesalt.pki", minion_tgt=MINION)
    assert all(s["result"] for s in ret.data.values()), ret.stdout
    pki_dir = node_roots / MINION / "etc" / "kubernetes" / "pki"
    yield {
        "tls": etcd.MemberTLS(
            ca=pki_dir / "etcd-ca.crt",
            cert=pki_dir / "etcd-server.crt",
            key=pki_dir / "etcd-server.key",
            peer_cert=pki_dir / "etcd-peer.crt",
            peer_key=pki_dir / "etcd-peer.key",
        ),
        "context": etcd.client_context(
            pki_dir / "etcd-ca.crt",
            pki_dir / "apiserver-etcd-client.crt",
            pki_dir / "apiserver-etcd-client.key",
        ),
        "client": [
            "--cert",
            str(pki_dir / "apiserver-etcd-client.crt"),
            "--key",
            str(pki_dir / "apiserver-etcd-client.key"),
            "--cacert",
            str(pki_dir / "etcd-ca.crt"),
        ],
    }
    if made_here:
        shutil.rmtree(node_roots / MINION)


@pytest.fixture
def cluster(pki, tmp_path):
    """Three voting members; every process started here is SIGKILLed afterwards."""
    started = etcd.start_cluster(3, tmp_path, tls=[pki["tls"]] * 3, client_context=pki["context"])
    started.workdir = tmp_path
    yield started
    started.kill()


class Ops:
    """The module and states, called through the real salt CLI on master-1."""

    def __init__(self, salt_cli, cluster):
        self.salt_cli = salt_cli
        self.cluster = cluster

    @property
    def endpoints(self):
        return ",".join(m.client_url for m in self.cluster.members if m.alive())

    def call(self, function, *args, **kwargs):
        ret = self.salt_cli.run(
            function, *args, f"endpoints={self.endpoints}", minion_tgt=MINION, **kwargs
        )
        return ret

    def ok(self, function, *args, **kwargs):
        ret = self.call(function, *args, **kwargs)
        assert ret.returncode == 0, ret.stdout + ret.stderr
        return ret.data

    def state(self, function, name, test=False, **kwargs):
        args = [f"{k}={json.dumps(v)}" for k, v in kwargs.items()]
        ret = self.salt_cli.run(
            "state.single",
            function,
            f"name={json.dumps(name)}",  # an id stays a string
            *args,
            f"endpoints={self.endpoints}",
            *(["test=True"] if test else []),
            minion_tgt=MINION,
        )
        assert isinstance(ret.data, dict), ret.stdout + ret.stderr
        (result,) = ret.data.values()
        return result

    def present(self, member, test=False, timeout=60):
        return self.state(
            "kubesalt_etcd.member_present",
            member.name,
            test=test,
            peer_urls=[member.peer_url],
            client_urls=[member.client_url],
            data_dir=str(member.data_dir),
            env_file=str(self.cluster.workdir / f"{member.name}.env"),
            service=NO_SERVICE,
            timeout=timeout,
        )

    def absent(self, name, test=False):
        return self.state("kubesalt_etcd.member_absent", name, test=test, service=NO_SERVICE)

    def members(self):
        return {m["name"] or m["peer_urls"][0]: m for m in self.ok("kubesalt_etcd.members")}

    def join(self, member, tls):
        """Add ``member`` as a learner and start its etcd with the list etcd returned."""
        added = self.ok("kubesalt_etcd.add", member.name, member.peer_url)
        assert added["member"]["is_learner"] is True
        etcd.launch(member, added["initial_cluster"], "existing", "unused-for-existing", tls)
        self.cluster.members.append(member)
        return added


@pytest.fixture
def ops(salt_cli, cluster):
    return Ops(salt_cli, cluster)


def _write_keys(cluster, prefix, count=20):
    keys = {f"/kubesalt/test/{prefix}/{i}": f"value-{prefix}-{i}" for i in range(count)}
    for key, value in keys.items():
        cluster.put(key, value)
    return keys


def _assert_keys(cluster, keys):
    for index, member in enumerate(cluster.members):
        if not member.alive():
            continue
        for key, value in keys.items():
            assert cluster.get(key, member=index) == value, (member.name, key)


def test_members_status_health_and_leader(ops):
    members = ops.members()
    assert sorted(members) == ["etcd-0", "etcd-1", "etcd-2"]
    assert all(not m["is_learner"] and m["id"].isdigit() for m in members.values())
    rows = ops.ok("kubesalt_etcd.status")
    assert all(r["healthy"] for r in rows)
    assert [r["leader"] for r in rows].count(True) == 1
    health = ops.ok("kubesalt_etcd.health")
    assert health["healthy"] and health["quorum"] == 2 and health["can_lose"] == 1
    leader = next(r["name"] for r in rows if r["leader"])
    assert ops.ok("kubesalt_etcd.leader") == leader
    # Each member's own metrics: connected to both others.
    assert ops.ok("kubesalt_etcd.peer_links") == {
        "etcd-0": ["etcd-1", "etcd-2"],
        "etcd-1": ["etcd-0", "etcd-2"],
        "etcd-2": ["etcd-0", "etcd-1"],
    }


def test_errors_name_what_etcd_said(ops):
    ret = ops.call("kubesalt_etcd.promote", "no-such-member")
    assert ret.returncode != 0 and "no such member" in ret.stdout
    ret = ops.call("kubesalt_etcd.add", "x", "")
    assert "peer_urls: expected" in ret.stdout
    ret = ops.salt_cli.run(
        "kubesalt_etcd.members", "endpoints=https://127.0.0.1:1", minion_tgt=MINION
    )
    assert "no etcd endpoint answered" in ret.stdout


def test_a_fourth_and_fifth_join_one_at_a_time_and_every_key_survives(ops, cluster, pki):
    keys = _write_keys(cluster, "before-join")
    fourth = etcd.new_member("etcd-3", cluster.workdir, tls=True)
    fifth = etcd.new_member("etcd-4", cluster.workdir, tls=True)

    predicted = ops.present(fourth, test=True)
    assert predicted["result"] is None
    assert list(predicted["changes"]) == ["added", "started", "promoted"]
    assert "etcd-3" not in ops.members(), "test=True changed the cluster"

    ops.join(fourth, pki["tls"])
    # A second join while the first is a learner waits, then gives up with the reason.
    waiting = ops.present(fifth, timeout=3)
    assert waiting["result"] is False
    assert "one member at a time" in waiting["comment"]
    assert "etcd-4" not in ops.members()

    promoted = ops.present(fourth)
    assert promoted["result"] is True, promoted["comment"]
    assert promoted["changes"] == {"promoted": "etcd-3 votes"}
    _assert_keys(cluster, keys)

    keys.update(_write_keys(cluster, "before-fifth"))
    ops.join(fifth, pki["tls"])
    assert ops.present(fifth)["result"] is True
    members = ops.members()
    assert sorted(members) == ["etcd-0", "etcd-1", "etcd-2", "etcd-3", "etcd-4"]
    assert not any(m["is_learner"] for m in members.values())
    _assert_keys(cluster, keys)
    # A member that runs from its data comes to name only itself in its member-list file
    # (started by hand here, it had none), once; then nothing is left to do.
    settled = ops.present(fifth)
    assert settled["result"] is True and list(settled["changes"]) == ["bootstrap"]
    env = (cluster.workdir / "etcd-4.env").read_text()
    assert f"ETCD_INITIAL_CLUSTER=etcd-4={fifth.peer_url}\n" in env
    again = ops.present(fifth)
    assert again["result"] is True and again["changes"] == {}


def test_remove_then_removing_two_of_three_is_refused(ops, cluster):
    keys = _write_keys(cluster, "before-remove")
    predicted = ops.absent("etcd-2", test=True)
    assert predicted["result"] is None and "removed" in predicted["changes"]
    assert "etcd-2" in ops.members()

    removed = ops.absent("etcd-2")
    assert removed["result"] is True, removed["comment"]
    cluster.members[2].process.wait(timeout=10)  # a removed member exits by itself
    assert sorted(ops.members()) == ["etcd-0", "etcd-1"]
    _assert_keys(cluster, keys)

    refused = ops.absent("etcd-1")
    assert refused["result"] is False
    assert "refusing to remove etcd-1" in refused["comment"]
    assert "nothing was changed" in refused["comment"]
    assert sorted(ops.members()) == ["etcd-0", "etcd-1"]
    ret = ops.call("kubesalt_etcd.remove", "etcd-1")
    assert ret.returncode != 0 and "refusing" in ret.stdout
    assert ops.absent("etcd-2")["changes"] == {}


def _leader(ops):
    return next(r["name"] for r in ops.ok("kubesalt_etcd.status") if r["leader"])


def test_removing_the_leader_hands_leadership_over_and_no_write_fails(ops, cluster, pki):
    keys = _write_keys(cluster, "before-leader-remove")
    leader = _leader(ops)
    predicted = ops.absent(leader, test=True)
    assert predicted["result"] is None
    assert predicted["changes"]["leader"].startswith("hand leadership to etcd-")
    assert _leader(ops) == leader, "test=True moved the leader"

    stop = cluster.workdir / "writer.stop"
    writer = subprocess.Popen(
        [sys.executable, str(REPO / "lab" / "kubesalt_lab" / "etcd_writer.py"),
         "--servers", ops.endpoints,
         *pki["client"], "--stop-file", str(stop), "--interval", "0.05"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        removed = ops.absent(leader)
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    assert removed["result"] is True, removed["comment"]
    successor = removed["changes"]["leader"].removeprefix("handed over to ")
    assert successor in {m.name for m in cluster.members} - {leader}
    assert _leader(ops) == successor
    summary = json.loads(out.strip().splitlines()[-1])
    # Without the hand-over, removing the leader costs an election: about 2 s of puts that
    # no member acknowledges (measured: one failed put in every try at this interval).
    assert summary["puts"] > 5 and summary["failed_puts"] == 0, summary
    assert summary["missing"] == 0, summary
    _assert_keys(cluster, keys)


def test_move_leader_on_request(ops):
    follower = next(r["name"] for r in ops.ok("kubesalt_etcd.status") if not r["leader"])
    assert ops.ok("kubesalt_etcd.move_leader", follower) == follower
    assert _leader(ops) == follower
    assert ops.ok("kubesalt_etcd.move_leader", follower) == follower  # already leads: no change
    moved = ops.ok("kubesalt_etcd.move_leader")
    assert moved != follower and _leader(ops) == moved
    ret = ops.call("kubesalt_etcd.move_leader", "no-such-member")
    assert ret.returncode != 0 and "must be a healthy voting member" in ret.stdout


def test_replace_a_sigkilled_member(ops, cluster, pki):
    keys = _write_keys(cluster, "before-kill")
    cluster.members[2].kill()
    # With etcd-2 dead, removing a healthy member would leave one healthy voter of three.
    refused = ops.absent("etcd-1")
    assert refused["result"] is False and "1 healthy voting member" in refused["comment"]
    assert ops.absent("etcd-2")["result"] is True
    replacement = etcd.new_member("etcd-5", cluster.workdir, tls=True)
    ops.join(replacement, pki["tls"])
    assert ops.present(replacement)["result"] is True
    assert sorted(ops.members()) == ["etcd-0", "etcd-1", "etcd-5"]
    assert ops.ok("kubesalt_etcd.health")["healthy_voting_members"] == 3
    _assert_keys(cluster, keys)


def test_a_joiner_killed_right_after_add_is_finished_or_cleaned(ops, cluster, pki):
    keys = _write_keys(cluster, "before-fault")
    joiner = etcd.new_member("etcd-3", cluster.workdir, tls=True)
    added = ops.join(joiner, pki["tls"])
    joiner.kill()
    # Restarted from what it wrote (as Restart=on-failure does), the next run promotes it.
    etcd.launch(joiner, added["initial_cluster"], "existing", "unused", pki["tls"])
    assert ops.present(joiner)["result"] is True
    assert ops.members()["etcd-3"]["is_learner"] is False

    # A learner whose node never comes back: the next run removes the stale learner.
    lost = etcd.new_member("etcd-4", cluster.workdir, tls=True)
    ops.ok("kubesalt_etcd.add", lost.name, lost.peer_url)
    stale = ops.members()[lost.peer_url]
    assert stale["is_learner"] and stale["name"] == ""
    cleaned = ops.absent(stale["id"])
    assert cleaned["result"] is True and "removed" in cleaned["changes"]
    assert not any(m["is_learner"] for m in ops.members().values())
    _assert_keys(cluster, keys)


def test_the_leader_killed_during_promote_the_run_retries_and_converges(ops, cluster, pki):
    keys = _write_keys(cluster, "before-leader-kill")
    joiner = etcd.new_member("etcd-3", cluster.workdir, tls=True)
    ops.join(joiner, pki["tls"])
    rows = ops.ok("kubesalt_etcd.status")
    leader = next(
        m for m in cluster.members if m.name == next(r["name"] for r in rows if r["leader"])
    )
    leader.kill()
    result = ops.present(joiner, timeout=90)
    assert result["result"] is True, result["comment"]
    assert result["changes"] == {"promoted": "etcd-3 votes"}
    health = ops.ok("kubesalt_etcd.health")
    assert health["voting_members"] == 4 and health["healthy_voting_members"] == 3
    assert health["leader"] not in (None, leader.name)
    _assert_keys(cluster, keys)


def test_a_member_rejoins_at_a_new_address(ops, cluster, pki):
    keys = _write_keys(cluster, "before-move")
    old = cluster.members[2]
    old.kill()
    moved = etcd.new_member("etcd-2", cluster.workdir / "moved", tls=True)
    # The state would remove the old entry itself; starting etcd is the lab's part.
    predicted = ops.present(moved, test=True)
    assert predicted["result"] is None
    assert list(predicted["changes"]) == ["removed", "added", "started", "promoted"]
    assert ops.absent("etcd-2")["result"] is True
    ops.join(moved, pki["tls"])
    assert ops.present(moved)["result"] is True
    assert ops.members()["etcd-2"]["peer_urls"] == [moved.peer_url]
    _assert_keys(cluster, keys)
