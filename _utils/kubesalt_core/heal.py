"""The decisions of kubesalt's healing loop, as pure functions (no journal, no systemctl).

- :func:`failure_event`: a journal entry from systemd (PID 1) about a unit becomes an event
  only when the unit is one the node's roles manage and it really is failed
  (``ActiveState=failed``: systemd gave up or the start limit was hit). An attempt systemd
  retries by itself (``Restart=``) is not an event.
- :func:`decide`: what a repair of that unit does now, from the repairs already made:
  wait out the backoff between repairs that did not hold, restart, re-apply the component's
  state once when restarts do not hold, and escalate when the budget of repairs in the
  window is spent. After an escalation kubesalt stands down until an operator resets the
  unit (``kubesalt_heal.reset``) or the window has passed.
- :class:`Policy`: those numbers, from pillar ``kubesalt:heal``.
"""

import json
import re
from dataclasses import asdict, dataclass, field

# MESSAGE_IDs of systemd's own messages (see systemd's catalog): a unit "Failed with result"
# and a job "Failed to start" (start limit hit, oneshot failures).
UNIT_FAILED = "d9b373ed55a64feb8242e02dbe79a49c"
START_FAILED = "be02cf6855d2428ba40df7e9d022f03d"
FAILURE_MESSAGE_IDS = (UNIT_FAILED, START_FAILED)

# What a repair did: the two that count against the budget, and the ones that only inform.
REPAIRS = ("restart", "reapply")
ESCALATE = "escalate"
RESET = "reset"

# How a kubesalt state run (a repair's re-apply, the scheduled highstate) that finds another
# state run going on the node waits its turn: Salt's ``queue`` as a number, which blocks
# until the runs before it end (when fewer than this many are running, else it reports the
# conflict). Never ``queue=True``: since Salt 3008 that puts the job in the minion's disk
# queue and returns "Job queued for execution" at once, and called from a module (as a
# repair does) the queued job has no function: the minion later runs "command None", whose
# half-dead job makes the next state.sls on that node fail with a TypeError.
STATE_QUEUE = 16

# A systemd unit name as kubesalt manages them (no templates, no paths).
UNIT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}\.service$")


@dataclass(frozen=True)
class Policy:
    """How hard kubesalt tries (pillar ``kubesalt:heal``, these are its defaults)."""

    backoff_seconds: tuple = (0, 5, 30, 120)
    budget_attempts: int = 6
    window_seconds: int = 3600
    hold_seconds: int = 10
    restarts_before_reapply: int = 2

    @classmethod
    def from_config(cls, heal):
        heal = dict(heal or {})
        if "backoff_seconds" in heal:
            heal["backoff_seconds"] = tuple(heal["backoff_seconds"])
        return cls(**heal)


DEFAULT_POLICY = Policy()


START_LIMIT_TEXT = "Start request repeated too quickly"


def failure_event(entry, active_state, managed_units, restarts=None, notes=()):
    """The event payload for journal ``entry`` (a ``journalctl -o json`` dict), or None.

    active_state
        The unit's ActiveState now (``systemctl show -p ActiveState``).
    managed_units
        The units this node's roles manage (``kubesalt_core.components.managed_units``).
    restarts
        systemd's ``NRestarts`` of the unit: the restarts it made by itself before giving up.
    notes
        systemd's latest messages about the unit; "Start request repeated too quickly"
        (which has no MESSAGE_ID) among them names the result ``start-limit-hit``.
    """
    if entry.get("MESSAGE_ID") not in FAILURE_MESSAGE_IDS:
        return None
    unit = entry.get("UNIT") or entry.get("_SYSTEMD_UNIT")
    if unit not in managed_units or active_state != "failed":
        return None
    result = entry.get("UNIT_RESULT") or entry.get("JOB_RESULT") or "failed"
    if any(START_LIMIT_TEXT in text for text in [entry.get("MESSAGE") or "", *notes]):
        result = "start-limit-hit"
    return {
        "unit": unit,
        "result": result,
        "invocation_id": entry.get("INVOCATION_ID") or entry.get("_SYSTEMD_INVOCATION_ID"),
        "time": int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6,
        "restarts": restarts,
    }


def failure_events(entries, states, managed_units, notes=None):
    """One event per failed unit from a batch of journal ``entries``: the time of its first
    failure entry in the batch (the failure happened then), the result and invocation of its
    latest "Failed with result" (a later "Failed to start" only says ``failed``).

    states
        ``{unit: (ActiveState, NRestarts)}`` for the units the entries name.
    notes
        ``{unit: [message, ...]}``: systemd's latest messages about each unit.
    """
    events = {}
    for entry in entries:
        unit = entry.get("UNIT") or entry.get("_SYSTEMD_UNIT")
        active_state, restarts = states.get(unit, (None, None))
        event = failure_event(
            entry, active_state, managed_units, restarts, (notes or {}).get(unit, ())
        )
        if event is None:
            continue
        earlier = events.get(unit)
        if earlier is not None:
            event["time"] = earlier["time"]
            event["invocation_id"] = event["invocation_id"] or earlier["invocation_id"]
            if entry["MESSAGE_ID"] != UNIT_FAILED and event["result"] != "start-limit-hit":
                event["result"] = earlier["result"]
        events[unit] = event
    return list(events.values())


@dataclass(frozen=True)
class Attempt:
    """One thing the healing loop did about a unit: when, what (``restart``, ``reapply``,
    ``escalate``, ``reset``, ``none``, ``refused``), and whether the unit was active
    (and stayed so for ``hold_seconds``) afterwards."""

    unit: str
    at: float
    action: str
    held: bool
    detail: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line):
        record = json.loads(line)
        return cls(
            **{k: record[k] for k in ("unit", "at", "action", "held") if k in record},
            detail=record.get("detail", ""),
            extra=record.get("extra") or {},
        )


@dataclass(frozen=True)
class Decision:
    action: str  # "restart", "reapply", "wait", "escalate", "stand-down"
    wait_seconds: float = 0.0
    reason: str = ""


def _since_reset(unit, history):
    mine = sorted((a for a in history if a.unit == unit), key=lambda a: a.at)
    resets = [i for i, a in enumerate(mine) if a.action == RESET]
    return mine[resets[-1] + 1 :] if resets else mine


def decide(unit, history, now, policy=DEFAULT_POLICY):
    """What to do about failed ``unit`` at ``now`` given ``history`` (every Attempt made)."""
    recent = [a for a in _since_reset(unit, history) if now - a.at < policy.window_seconds]
    if any(a.action == ESCALATE for a in recent):
        return Decision(
            "stand-down",
            reason="escalated already in this window: waiting for an operator "
            "(kubesalt_heal.reset once it is fixed)",
        )
    repairs = [a for a in recent if a.action in REPAIRS]
    if len(repairs) >= policy.budget_attempts:
        return Decision(
            ESCALATE,
            reason=f"{len(repairs)} repairs within {policy.window_seconds}s did not hold",
        )
    # Repairs since the last one that held: the backoff grows with them, a held one resets it.
    failing = []
    for attempt in reversed(repairs):
        if attempt.held:
            break
        failing.insert(0, attempt)
    if failing:
        backoff = policy.backoff_seconds[min(len(failing), len(policy.backoff_seconds) - 1)]
        left = failing[-1].at + backoff - now
        if left > 0:
            return Decision("wait", left, f"backoff {backoff}s after {len(failing)} failed repairs")
    failed_restarts = [a for a in failing if a.action == "restart"]
    reapplied = any(a.action == "reapply" for a in repairs)
    if len(failed_restarts) >= policy.restarts_before_reapply and not reapplied:
        return Decision(
            "reapply",
            reason=f"{len(failed_restarts)} restarts did not hold: re-apply the component's state",
        )
    return Decision("restart", reason=f"repair {len(repairs) + 1} of {policy.budget_attempts}")
