"""The decisions of kubesalt's healing loop, as pure functions (no journal, no systemctl).

- :func:`failure_event`: a journal entry from systemd (PID 1) about a unit becomes an event
  only when the unit is one the node's roles manage and it really is failed
  (``ActiveState=failed``: systemd gave up or the start limit was hit). An attempt systemd
  retries by itself (``Restart=``) is not an event.
- :func:`decide`: what a repair of that unit does now, from the repairs already made:
  wait out the backoff (0, 5, 30, 120 s between attempts), restart, re-apply the component's
  state once when restarts do not hold, and escalate when the budget of attempts in the
  window is spent.
"""

from dataclasses import dataclass

# MESSAGE_IDs of systemd's own messages (see systemd's catalog): a unit "Failed with result"
# and a job "Failed to start" (start limit hit, oneshot failures).
UNIT_FAILED = "d9b373ed55a64feb8242e02dbe79a49c"
START_FAILED = "be02cf6855d2428ba40df7e9d022f03d"
FAILURE_MESSAGE_IDS = (UNIT_FAILED, START_FAILED)

BACKOFF_SECONDS = (0, 5, 30, 120)
BUDGET_ATTEMPTS = 6
BUDGET_WINDOW_SECONDS = 3600
# Restarts that did not hold before the component's state is re-applied (once per window).
RESTARTS_BEFORE_REAPPLY = 2


def failure_event(entry, active_state, managed_units):
    """The event payload for journal ``entry`` (a ``journalctl -o json`` dict), or None.

    active_state
        The unit's ActiveState now (``systemctl show -p ActiveState``).
    managed_units
        The units this node's roles manage (``kubesalt_pillar.managed_units``).
    """
    if entry.get("MESSAGE_ID") not in FAILURE_MESSAGE_IDS:
        return None
    unit = entry.get("UNIT") or entry.get("_SYSTEMD_UNIT")
    if unit not in managed_units or active_state != "failed":
        return None
    message = entry.get("MESSAGE") or ""
    result = entry.get("UNIT_RESULT") or entry.get("JOB_RESULT") or "failed"
    if "Start request repeated too quickly" in message:
        result = "start-limit-hit"
    return {
        "unit": unit,
        "result": result,
        "invocation_id": entry.get("INVOCATION_ID") or entry.get("_SYSTEMD_INVOCATION_ID"),
        "time": int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6,
    }


@dataclass(frozen=True)
class Attempt:
    """One repair kubesalt made: when, what (``restart``/``reapply``), and whether the unit
    was active afterwards."""

    unit: str
    at: float
    action: str
    held: bool


@dataclass(frozen=True)
class Decision:
    action: str  # "restart", "reapply", "wait", "escalate"
    wait_seconds: float = 0.0
    reason: str = ""


def decide(unit, history, now):
    """What to do about failed ``unit`` at ``now`` given ``history`` (every Attempt made)."""
    recent = [a for a in history if a.unit == unit and now - a.at < BUDGET_WINDOW_SECONDS]
    recent.sort(key=lambda a: a.at)
    if len(recent) >= BUDGET_ATTEMPTS:
        return Decision(
            "escalate",
            reason=f"{len(recent)} repairs within {BUDGET_WINDOW_SECONDS}s did not hold",
        )
    if recent:
        backoff = BACKOFF_SECONDS[min(len(recent), len(BACKOFF_SECONDS) - 1)]
        left = recent[-1].at + backoff - now
        if left > 0:
            return Decision("wait", left, f"backoff {backoff}s after attempt {len(recent)}")
    failed_restarts = [a for a in recent if a.action == "restart"]
    reapplied = any(a.action == "reapply" for a in recent)
    if len(failed_restarts) >= RESTARTS_BEFORE_REAPPLY and not reapplied:
        return Decision(
            "reapply",
            reason=f"{len(failed_restarts)} restarts did not hold: re-apply the component's state",
        )
    return Decision("restart", reason=f"attempt {len(recent) + 1} of {BUDGET_ATTEMPTS}")
