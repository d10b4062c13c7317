"""The healing loop's decisions: which journal entries are failures worth a repair, and
what a repair does next (backoff, restart, re-apply once, escalate)."""

import pytest

from kubesalt_core import heal

MANAGED = {"etcd.service": "etcd", "containerd.service": "containerd"}


def _entry(**fields):
    base = {
        "MESSAGE_ID": heal.UNIT_FAILED,
        "UNIT": "etcd.service",
        "UNIT_RESULT": "signal",
        "INVOCATION_ID": "abc",
        "__REALTIME_TIMESTAMP": "1764000000000000",
        "MESSAGE": "etcd.service: Failed with result 'signal'.",
    }
    return {**base, **fields}


def test_a_unit_systemd_gave_up_on_is_an_event():
    assert heal.failure_event(_entry(), "failed", MANAGED) == {
        "unit": "etcd.service",
        "result": "signal",
        "invocation_id": "abc",
        "time": 1764000000.0,
        "restarts": None,
    }


@pytest.mark.parametrize(
    ("entry", "state"),
    [
        (_entry(), "activating"),  # systemd restarts it by itself (Restart=on-failure)
        (_entry(UNIT="sshd.service"), "failed"),  # not a unit kubesalt manages
        (_entry(MESSAGE_ID="39f53479d3a045ac8e11786248231fbf"), "failed"),  # "Started"
    ],
)
def test_retries_foreign_units_and_other_messages_are_not_events(entry, state):
    assert heal.failure_event(entry, state, MANAGED) is None


def test_the_start_limit_is_named():
    entry = _entry(
        MESSAGE_ID=heal.START_FAILED,
        UNIT="containerd.service",
        UNIT_RESULT=None,
        JOB_RESULT="failed",
        MESSAGE="containerd.service: Start request repeated too quickly.",
    )
    assert heal.failure_event(entry, "failed", MANAGED)["result"] == "start-limit-hit"


def _attempts(*spec):
    return [heal.Attempt("etcd.service", at, action, False) for at, action in spec]


def test_first_failure_restarts_at_once():
    assert heal.decide("etcd.service", [], now=100.0).action == "restart"


def test_backoff_grows_between_attempts():
    decision = heal.decide("etcd.service", _attempts((100.0, "restart")), now=102.0)
    assert (decision.action, decision.wait_seconds) == ("wait", 3.0)
    history = _attempts((100.0, "restart"), (106.0, "restart"), (140.0, "reapply"))
    decision = heal.decide("etcd.service", history, now=150.0)
    assert decision.action == "wait" and decision.wait_seconds == pytest.approx(110.0)


def test_restarts_that_do_not_hold_lead_to_one_reapply():
    history = _attempts((100.0, "restart"), (106.0, "restart"))
    assert heal.decide("etcd.service", history, now=140.0).action == "reapply"
    history += _attempts((140.0, "reapply"))
    assert heal.decide("etcd.service", history, now=300.0).action == "restart"


def test_a_spent_budget_escalates_and_the_window_forgets():
    history = _attempts(
        *((100.0 + 200 * i, "restart") for i in range(heal.DEFAULT_POLICY.budget_attempts))
    )
    assert heal.decide("etcd.service", history, now=1400.0).action == "escalate"
    later = 100.0 + heal.DEFAULT_POLICY.window_seconds + 200 * heal.DEFAULT_POLICY.budget_attempts
    assert heal.decide("etcd.service", history, now=later).action == "restart"


def test_other_units_do_not_count():
    history = [heal.Attempt("containerd.service", 100.0, "restart", False)] * 10
    assert heal.decide("etcd.service", history, now=101.0).action == "restart"


def test_a_repair_that_held_starts_the_backoff_over():
    history = [
        heal.Attempt("etcd.service", 100.0, "restart", False),
        heal.Attempt("etcd.service", 106.0, "restart", True),
    ]
    # The unit failed again a second later: the budget counts both, the backoff neither.
    assert heal.decide("etcd.service", history, now=107.0).action == "restart"


def test_after_an_escalation_the_loop_stands_down_until_a_reset():
    history = _attempts(*((100.0 + i, "restart") for i in range(5)))
    history.append(heal.Attempt("etcd.service", 200.0, heal.ESCALATE, False))
    assert heal.decide("etcd.service", history, now=3500.0).action == "stand-down"
    history.append(heal.Attempt("etcd.service", 300.0, heal.RESET, False))
    assert heal.decide("etcd.service", history, now=301.0).action == "restart"


def test_the_policy_comes_from_pillar():
    policy = heal.Policy.from_config(
        {
            "backoff_seconds": [0, 1],
            "budget_attempts": 3,
            "window_seconds": 600,
            "hold_seconds": 3,
            "restarts_before_reapply": 1,
        }
    )
    history = _attempts((100.0, "restart"))
    assert heal.decide("etcd.service", history, now=101.5, policy=policy).action == "reapply"
    history += _attempts((102.0, "reapply"), (104.0, "restart"))
    assert heal.decide("etcd.service", history, now=110.0, policy=policy).action == "escalate"
