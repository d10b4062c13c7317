"""The membership decisions of _utils/kubesalt_core/etcd.py on hand-made member lists."""

import pytest

import kubesalt_core.pki
from kubesalt_core import errors, etcd_client
from kubesalt_core import etcd as ke
from kubesalt_lab.pillar import lab_config


def member(name, index, learner=False, started=True):
    return ke.Member(
        id=str(1000 + index),
        name=name if started else "",
        peer_urls=(f"https://198.18.0.{index}:2380",),
        client_urls=(f"https://198.18.0.{index}:2379",) if started else (),
        is_learner=learner,
    )


THREE = [member("m1", 11), member("m2", 12), member("m3", 13)]
ALL_HEALTHY = {m.id for m in THREE}


def test_gateway_entries_parse_with_learner_omitted_when_false():
    answer = {
        "members": [
            {"ID": "123", "name": "a", "peerURLs": ["https://x:2380"], "clientURLs": ["https://x:2379"]},
            {"ID": "456", "peerURLs": ["https://y:2380"], "isLearner": True},
        ]
    }  # fmt: skip
    a, b = ke.members_of(answer)
    assert (a.id, a.is_learner, a.started) == ("123", False, True)
    assert (b.name, b.is_learner, b.started, b.client_urls) == ("", True, False, ())
    assert ke.member_from_dict(a.as_dict()) == a


@pytest.mark.parametrize(
    ("healthy", "target", "refused"),
    [
        (ALL_HEALTHY, "m3", False),  # 3 -> 2, both healthy: fine
        (ALL_HEALTHY - {"1013"}, "m3", False),  # removing the dead one: fine
        (ALL_HEALTHY - {"1013"}, "m1", True),  # leaves one healthy of three
        (set(), "m1", True),
    ],
)
def test_removal_of_one_of_three(healthy, target, refused):
    found = next(m for m in THREE if m.name == target)
    assert (ke.removal_refusal(THREE, healthy, found) is not None) is refused


def test_two_of_three_is_refused_and_the_last_member_never_goes():
    two = THREE[:2]
    reason = ke.removal_refusal(two, {m.id for m in two}, two[1])
    assert "2 of the current 2 are needed" in reason
    assert "last voting member" in ke.removal_refusal(THREE[:1], {"1011"}, THREE[0])


def test_a_learner_can_always_go():
    learner = member("m4", 14, learner=True)
    assert ke.removal_refusal([*THREE, learner], set(), learner) is None


def _row(member_id, leader=False, healthy=True, learner=False, index=10):
    return {
        "id": member_id,
        "leader": leader,
        "healthy": healthy,
        "is_learner": learner,
        "raft_index": index,
    }


def test_successor_only_when_the_leader_leaves_and_the_furthest_healthy_voter():
    rows = [_row("1", leader=True), _row("2", index=9), _row("3", index=12)]
    assert ke.successor(rows, "2") is None  # not the leader: nothing to hand over
    assert ke.successor(rows, "1") == "3"
    rows[2]["healthy"] = False
    assert ke.successor(rows, "1") == "2"
    rows[1]["is_learner"] = True
    assert ke.successor(rows, "1") is None  # a learner cannot lead
    assert ke.successor([_row("1", leader=True)], "1") is None


def test_an_election_is_under_way_while_a_member_that_answered_knows_no_leader():
    settled = [{"leader_id": "7"}, {"leader_id": "7"}, {"error": "connection refused"}]
    assert not ke.electing(settled)
    assert ke.electing([{"leader_id": "7"}, {"leader_id": "0"}, {"error": "refused"}])
    assert ke.electing([{"leader_id": "0"}, {"leader_id": "0"}])
    assert not ke.electing([{"error": "refused"}, {"error": "refused"}])  # nobody answered


def test_join_steps():
    urls = ["https://198.18.0.14:2380"]
    assert ke.join_step(THREE, "m4", urls) == ("add", None)
    learner = member("m4", 14, learner=True, started=False)
    assert ke.join_step([*THREE, learner], "m4", urls) == ("promote", learner)
    assert ke.join_step([*THREE, learner], "m5", ["https://198.18.0.15:2380"]) == (
        "wait",
        learner,
    )
    voter = member("m4", 14)
    assert ke.join_step([*THREE, voter], "m4", urls) == ("present", voter)
    assert ke.join_step(THREE, "m3", ["https://198.18.0.99:2380"]) == ("relocate", THREE[2])
    with pytest.raises(ValueError, match="overlaps"):
        ke.join_step(THREE, "m9", ["https://198.18.0.13:2380"])


def test_initial_cluster_names_the_joiner_and_keeps_everyone():
    learner = member("m4", 14, learner=True, started=False)
    initial = ke.initial_cluster([*THREE, learner], "m4", ["https://198.18.0.14:2380"])
    assert initial.split(",") == [
        "m1=https://198.18.0.11:2380",
        "m2=https://198.18.0.12:2380",
        "m3=https://198.18.0.13:2380",
        "m4=https://198.18.0.14:2380",
    ]
    assert ke.initial_cluster(THREE, "m4", ["https://198.18.0.14:2380"]) == initial


def test_transient_errors_are_the_ones_that_pass_by_themselves():
    assert ke.transient(503, "etcdserver: unhealthy cluster")
    assert ke.transient(
        412, "etcdserver: can only promote a learner member which is in sync with leader"
    )
    assert ke.transient(
        400, "etcdserver: can only promote a learner member which is in sync with leader"
    )
    assert not ke.transient(404, "etcdserver: member not found")
    assert not ke.transient(400, "etcdserver: too many learner members in cluster")
    assert "strict reconfig" in ke.explain(503, "etcdserver: unhealthy cluster", ke.MEMBER_ADD)


def test_lock_request_and_holder():
    txn = ke.lock_request("/kubesalt/locks/restart", "m2", "77")
    assert txn["compare"][0]["create_revision"] == "0"
    assert txn["success"][0]["request_put"]["lease"] == "77"
    answer = {"responses": [{"response_range": {"kvs": [{"value": ke.b64("m1")}]}}]}
    assert ke.lock_holder(answer) == "m1"


def test_node_settings_from_the_lab_pillar():
    config = lab_config()
    assert ke.binary_path(config) is None  # no artifacts:etcd: nowhere to say where it is
    # The lab installs etcd from its own build, as a release archive.
    config["artifacts"]["etcd"] = {"source": "url", "url": "http://x/e.tgz", "sha256": "a" * 64}
    settings = ke.node_settings(config, "master-2", kubesalt_core.pki.Layout.of(config))
    assert settings["peer_urls"] == ["https://198.18.0.12:2380"]
    assert settings["listen_client_urls"] == ["https://198.18.0.12:2379", "https://127.0.0.1:2379"]
    assert settings["founders"] == {
        "master-1": "https://198.18.0.11:2380",
        "master-2": "https://198.18.0.12:2380",
        "master-3": "https://198.18.0.13:2380",
    }
    assert settings["binary"] == "/usr/local/bin/etcd"
    config["artifacts"]["etcd"] = {"source": "package", "package": "etcd-server"}
    assert ke.binary_path(config) == "/usr/bin/etcd"
    # etcd (its own user) reads its copies; each names the root-owned original it is of.
    assert settings["cert"] == "/etc/etcd/pki/server.crt"
    assert settings["tls_copies"][settings["cert"]].endswith("/pki/etcd-server.crt")
    assert settings["tls_copies"][settings["peer_key"]].endswith("/pki/etcd-peer.key")
    assert settings["user"] == "etcd"
    assert settings["token"] == "kubesalt-lab"


def _metrics(member_, *peers):
    """What a member's /metrics says of its peer connections (the lines as etcd writes
    them), between lines that are not about them."""
    local = ke.hex_id(member_.id)
    lines = ["# TYPE etcd_network_active_peers gauge"]
    lines += [
        f'etcd_network_active_peers{{Local="{local}",Remote="{ke.hex_id(p.id)}"}} 1' for p in peers
    ]
    lines += [f'etcd_network_disconnected_peers_total{{Local="{local}",Remote="ff"}} 2']
    return "\n".join(lines) + "\n"


def test_peer_links_read_from_each_members_metrics_name_the_pairs_cut_off():
    m1, m2, m3 = THREE
    assert ke.hex_id("1011") == "3f3"
    connected = {
        m1.id: _metrics(m1, m2, m3),
        m2.id: _metrics(m2, m1, m3),
        m3.id: _metrics(m3, m1, m2),
    }
    links = ke.peer_links(THREE, connected)
    assert links == {"m1": ["m2", "m3"], "m2": ["m1", "m3"], "m3": ["m1", "m2"]}
    assert ke.missing_links(links) == []
    assert ke.describe_links(links) == "every pair of members is connected now"
    # m1 and m2 cut off from each other; m3 still reaches both (and leads, and is healthy).
    cut = {m1.id: _metrics(m1, m3), m2.id: _metrics(m2, m3), m3.id: _metrics(m3, m1, m2)}
    assert ke.missing_links(ke.peer_links(THREE, cut)) == ["m1 - m2"]
    # One side's view is enough to name the pair; a member with no metrics is said so.
    one_sided = {m1.id: _metrics(m1, m3), m2.id: _metrics(m2, m1, m3), m3.id: None}
    links = ke.peer_links(THREE, one_sided)
    assert links["m3"] is None
    assert ke.describe_links(links) == "peer connections missing: m1 - m2 (no metrics from m3)"


def test_the_strict_reconfig_hint_says_what_etcd_checks():
    said = ke.explain(503, "etcdserver: unhealthy cluster", ke.MEMBER_REMOVE)
    assert "connected to every voting member for 5 s" in said


class _RefusingGateway:
    """A gateway whose members refuse a membership change while their own view of the
    peers is incomplete, as etcd's strict reconfiguration check does."""

    def __init__(self, views):
        self.views = views  # {member: peers in its own view}
        self.endpoints = [m.client_urls[0] for m in THREE]
        self.asked = []

    def post(self, path, body=None, endpoints=None, timeout=None):
        if path == ke.MEMBER_LIST:
            return {
                "members": [
                    {"ID": m.id, "name": m.name, "peerURLs": list(m.peer_urls),
                     "clientURLs": list(m.client_urls)}
                    for m in THREE
                ]
            }  # fmt: skip
        first = next(m for m in THREE if m.client_urls[0] == self.endpoints[0])
        self.asked.append(first.name)
        if len(self.views[first]) < len(THREE) - 1:
            raise errors.EtcdError(503, "etcdserver: unhealthy cluster", path)
        return {"done": True}

    def get_text(self, path, endpoint, timeout=None):
        owner = next(m for m in THREE if m.client_urls[0] == endpoint)
        return _metrics(owner, *self.views[owner])


def test_a_change_refused_until_the_end_names_the_pairs_cut_off():
    m1, m2, m3 = THREE
    # m1 and m2 lost their connection to each other; m3 reaches both.
    gateway = _RefusingGateway({m1: [m3], m2: [m3], m3: [m1, m2]})

    def remove():
        return gateway.post(ke.MEMBER_REMOVE, {"ID": THREE[2].id})

    with pytest.raises(errors.GaveUp) as refused:
        etcd_client.changing(gateway, remove, "removing m3", timeout=0)
    said = str(refused.value)
    assert said.startswith("removing m3: still failing after 1 attempts in 0 s: etcd answered 503")
    assert said.endswith("; peer connections missing: m1 - m2")
    # Any other error is left as it is.

    def refused_for_good():
        raise errors.EtcdError(400, "etcdserver: member not found", ke.MEMBER_REMOVE)

    with pytest.raises(errors.GaveUp) as permanent:
        etcd_client.changing(gateway, refused_for_good, "removing m3", timeout=0)
    assert "peer connections" not in str(permanent.value)


def test_a_change_goes_first_to_a_member_connected_to_every_voter_in_its_own_view():
    m1, m2, m3 = THREE
    learner = member("m4", 14, learner=True)
    urls = [m.client_urls[0] for m in (m1, m2, m3, learner)]
    # m1 still calls m2 inactive (etcd-io/etcd#14523); nobody needs a link to a learner.
    links = {"m1": ["m3"], "m2": ["m1", "m3"], "m3": ["m1", "m2"], "m4": ["m1"]}
    ordered = ke.connected_first(urls, [*THREE, learner], links)
    assert ordered == [urls[1], urls[2], urls[0], urls[3]]
    # The member leaving goes last even when its view is complete.
    assert ke.connected_first(urls, [*THREE, learner], links, avoid=(urls[1],))[:2] == [
        urls[2],
        urls[0],
    ]
    # A member whose view is unknown is not counted as connected.
    links["m2"] = None
    assert ke.connected_first(urls, [*THREE, learner], links)[0] == urls[2]


def test_a_refused_change_is_asked_again_of_a_member_whose_view_is_complete():
    m1, m2, m3 = THREE
    gateway = _RefusingGateway({m1: [m3], m2: [m1, m3], m3: [m1, m2]})
    answer = etcd_client.changing(
        gateway,
        lambda: gateway.post(ke.MEMBER_REMOVE),
        "removing m3",
        10,
        avoid=(m3.client_urls[0],),
    )
    assert answer == {"done": True}
    assert gateway.asked == ["m1", "m2"]
    # When no member's view is complete, it gives up naming the pairs cut off.
    gateway = _RefusingGateway({m1: [m3], m2: [m3], m3: [m1]})
    with pytest.raises(errors.GaveUp, match=r"peer connections missing: m1 - m2, m2 - m3$"):
        etcd_client.changing(gateway, lambda: gateway.post(ke.MEMBER_REMOVE), "removing m3", 1)
