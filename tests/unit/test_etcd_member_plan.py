"""kubesalt_core.etcd_member: the plan member_present and member_absent show under
test=True and then carry out, from the facts alone."""

import pytest

from kubesalt_core.etcd import settled_env
from kubesalt_core.etcd_member import join_plan, leave_plan

PEER = {"m1": "https://198.18.0.11:2380", "m2": "https://198.18.0.12:2380",
        "m3": "https://198.18.0.13:2380"}  # fmt: skip


def _entry(name, peer, learner=False, member_id=None):
    return {
        "id": member_id or str(abs(hash(peer)) % 10**12),
        "name": name,
        "peer_urls": [peer],
        "client_urls": [peer.replace("2380", "2379")] if name else [],
        "is_learner": learner,
    }


def _live(*entries, leader=True):
    return {"leader": leader, "members": list(entries), "answering": ["https://a:2379"]}


def _plan(live, answers=False, data=False, name="m3", peer=None):
    return join_plan(live, answers, data, name, [peer or PEER[name]], PEER)


def _actions(plan):
    return [s.action for s in plan.steps]


TWO = (_entry("m1", PEER["m1"]), _entry("m2", PEER["m2"]))


def test_a_voting_member_that_answers_needs_nothing():
    plan = _plan(_live(*TWO, _entry("m3", PEER["m3"])), answers=True, data=True)
    assert plan.steps == () and plan.changes == {}
    assert plan.comment == "m3 is a voting member and answers"


def test_a_voting_member_that_is_down_is_started_from_its_data():
    plan = _plan(_live(*TWO, _entry("m3", PEER["m3"])), data=True)
    assert _actions(plan) == ["start", "ready"]
    assert list(plan.changes) == ["started"]


def test_a_voting_member_whose_data_is_gone_rejoins_afresh():
    old = _entry("m3", PEER["m3"], member_id="42")
    plan = _plan(_live(*TWO, old))
    assert _actions(plan) == ["remove", "add", "start", "promote"]
    assert list(plan.changes) == ["removed", "added", "started", "promoted"]
    assert plan.member.id == "42"


def test_an_absent_member_joins_as_a_learner_its_old_data_moved_aside_first():
    assert _actions(_plan(_live(*TWO))) == ["add", "start", "promote"]
    plan = _plan(_live(*TWO), data=True)
    assert _actions(plan) == ["move_data", "add", "start", "promote"]
    assert list(plan.changes) == ["data_dir", "added", "started", "promoted"]


def test_a_join_waits_while_another_member_is_a_learner():
    joining = _entry("", "https://198.18.0.14:2380", learner=True)
    plan = _plan(_live(*TWO, joining))
    assert _actions(plan) == ["wait", "add", "start", "promote"]
    assert "(not started)" in plan.changes["waited"]


def test_a_join_cut_short_after_add_is_finished():
    learner = _entry("", PEER["m3"], learner=True)
    plan = _plan(_live(*TWO, learner))
    assert _actions(plan) == ["write_env", "start", "promote"]
    assert plan.initial == f"m1={PEER['m1']},m2={PEER['m2']},m3={PEER['m3']}"
    # Started already: only promoted (the start step finds it answering).
    started = _entry("m3", PEER["m3"], learner=True)
    assert _actions(_plan(_live(*TWO, started), answers=True)) == ["start", "promote"]


def test_a_member_under_another_name_at_these_urls_is_refused():
    with pytest.raises(ValueError, match="overlaps m3"):
        _plan(_live(*TWO, _entry("other", PEER["m3"])))


def test_without_a_leader_a_founder_founds_and_others_are_refused():
    plan = _plan(_live(leader=False))
    assert _actions(plan) == ["found", "start"]
    assert plan.initial == ",".join(f"{n}={PEER[n]}" for n in ("m1", "m2", "m3"))
    assert list(plan.changes) == ["founded", "started"]
    with pytest.raises(ValueError, match="not among the founders"):
        join_plan(_live(leader=False), False, False, "m4", ["https://198.18.0.14:2380"], PEER)


def test_without_a_leader_a_founder_still_waited_for_founds():
    # The first founder answers, waiting for its peers: it lists m3 as never started.
    waiting = _live(_entry("m1", PEER["m1"]), _entry("", PEER["m3"]), leader=False)
    assert _actions(_plan(waiting)) == ["found", "start"]


def test_without_a_leader_a_member_whose_data_is_gone_is_refused_when_a_survivor_counts_it():
    # Quorum lost: m1 survives and lists m3 as a member that ran; m3's data is gone.
    survivor = _live(_entry("m1", PEER["m1"]), _entry("m3", PEER["m3"]), leader=False)
    with pytest.raises(ValueError, match=r"lost its quorum.*kubesalt\.orch\.etcd_restore"):
        _plan(survivor)
    # With its data it only starts (a member that was just down).
    assert _actions(_plan(survivor, data=True)) == ["start"]


def test_without_a_leader_a_member_with_data_starts_or_waits_for_its_peers():
    assert _actions(_plan(_live(leader=False), data=True)) == ["start"]
    waiting = _plan(_live(leader=False), answers=True, data=True)
    assert waiting.steps == () and "waiting for peers" in waiting.comment


def _check(safe=True, successor=None, member=True):
    entry = _entry("m3", PEER["m3"], member_id="7") if member else None
    return {"member": entry, "safe": safe, "reason": "2 of 3 would be left unhealthy",
            "successor": {"name": successor} if successor else None}  # fmt: skip


def test_leaving_is_refused_before_anything_when_quorum_would_break():
    with pytest.raises(ValueError, match=r"refusing to remove m3: 2 of 3.*nothing was changed"):
        leave_plan("m3", _check(safe=False), local=False, has_data=True, service_runs=True)


def test_leaving_hands_leadership_over_removes_and_retires_on_its_own_host():
    plan = leave_plan("m3", _check(successor="m1"), local=True, has_data=True, service_runs=False)
    assert [s.action for s in plan.steps] == ["hand_over", "remove", "retire"]
    assert plan.changes["leader"] == "hand leadership to m1"
    # From another host: the entry only, never that host's data or service.
    plan = leave_plan("m3", _check(), local=False, has_data=True, service_runs=True)
    assert [s.action for s in plan.steps] == ["remove"]


def test_a_member_already_gone_needs_nothing_unless_its_host_still_runs_etcd():
    gone = leave_plan("m3", _check(member=False), local=False, has_data=True, service_runs=True)
    assert gone.steps == () and gone.comment == "m3 is not a member"
    here = leave_plan("m3", _check(member=False), local=True, has_data=False, service_runs=True)
    assert [s.action for s in here.steps] == ["retire"]


def test_a_member_that_runs_from_its_data_comes_to_name_only_itself_in_its_member_list():
    three = _live(*TWO, _entry("m3", PEER["m3"]))
    plan = join_plan(three, True, True, "m3", [PEER["m3"]], PEER, settled=False)
    assert _actions(plan) == ["settle"]
    assert list(plan.changes) == ["bootstrap"]
    # Settled already, or without data to run from: nothing to write.
    assert _plan(three, answers=True, data=True).steps == ()
    assert join_plan(three, True, False, "m3", [PEER["m3"]], PEER, settled=False).steps == ()


def test_the_settled_member_list_names_only_the_member_as_existing():
    text = settled_env("m3", PEER["m3"], "kubesalt-lab")
    assert "ETCD_INITIAL_CLUSTER_STATE=existing\n" in text
    assert f"ETCD_INITIAL_CLUSTER=m3={PEER['m3']}\n" in text
    assert "ETCD_INITIAL_CLUSTER_TOKEN=kubesalt-lab\n" in text
