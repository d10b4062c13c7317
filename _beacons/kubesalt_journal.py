"""
kubesalt_journal: tell the master when a unit kubesalt manages has failed for good.

Follows the journal from a cursor kept in ``paths:heal_dir`` (``journal.cursor``): a minion
restart neither replays what was read nor loses what was written meanwhile. The first run on
a node starts at the journal's end. It reads only systemd's own messages (``_PID=1``) that a
unit failed or failed to start, and emits one event per unit that

- this node's roles manage (roles from pillar), and
- is failed now (``ActiveState=failed``: systemd gave up, or the start limit was hit), not
  a failure systemd is about to retry by itself (``Restart=``), and
- has no kubesalt repair in flight (its own restarts are not news).

Event tag ``salt/beacon/<minion>/kubesalt_journal/failed``; data: ``unit``, ``result``
(``exit-code``, ``signal``, ``start-limit-hit``, ...), ``invocation_id``, ``time`` (of the
journal entry, UNIX seconds), ``restarts`` (systemd's own restarts before it gave up).

Configuration (minion config or pillar; see ``conf/minion.d/kubesalt.conf``):

.. code-block:: yaml

    beacons:
      kubesalt_journal:
        - interval: 2          # seconds between reads (Salt's own beacon option)
        - max_entries: 500     # journal entries read per interval, at most
"""

import logging
import shutil
import time

import kubesalt_core.components
import kubesalt_core.errors
import kubesalt_core.heal
import kubesalt_core.heal_store
import kubesalt_core.pillar
import kubesalt_core.systemd

# The beacon runs in the minion's main process, which every job process is forked from:
# this module keeps what it imported, but the process keeps no kubesalt_core, so a job
# imports the copy on disk now (after a sync, the new one) instead of inheriting this one.
kubesalt_core.forget()

log = logging.getLogger(__name__)

__virtualname__ = "kubesalt_journal"

# Salt's own per-beacon options, and ours with what each must be.
_SALT_OPTIONS = ("interval", "disable_during_state_run", "run_once", "enabled")
_OPTIONS = {"max_entries": (1, 100000, "a whole number of journal entries")}
# The node's config (roles, heal_dir) is read again after this many seconds, so a pillar
# refresh reaches the beacon without a minion restart.
CONFIG_SECONDS = 60


def __virtual__():
    if shutil.which("journalctl") and shutil.which("systemctl"):
        return __virtualname__
    return False, "kubesalt_journal: needs journalctl and systemctl (systemd)"


def _merged(config):
    merged = {}
    for item in config if isinstance(config, list) else []:
        if isinstance(item, dict):
            merged.update(item)
    return merged


def validate(config):
    """Check the beacon's configuration: a list of one-key mappings, only known keys."""
    if not isinstance(config, list) or not all(isinstance(i, dict) for i in config):
        return False, (
            "kubesalt_journal: configuration must be a list of mappings, e.g. "
            "[{interval: 2}, {max_entries: 500}]"
        )
    for key, value in _merged(config).items():
        if key in _SALT_OPTIONS:
            continue
        if key not in _OPTIONS:
            known = ", ".join(sorted([*_OPTIONS, *_SALT_OPTIONS]))
            return False, f"kubesalt_journal: unknown option {key!r}; expected one of: {known}"
        low, high, what = _OPTIONS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return False, (
                f"kubesalt_journal: {key} must be {what} from {low} to {high}, got {value!r}"
            )
    return True, "valid beacon configuration"


def _node():
    """(managed units, Store), from the minion's pillar in memory and re-read every
    CONFIG_SECONDS. Beacons run in the minion's main loop: nothing here may wait on the
    master (not even for the formula defaults), or the minion stops answering."""
    cached = __context__.get("kubesalt_journal.node")
    if cached and time.monotonic() - cached[0] < CONFIG_SECONDS:
        return cached[1], cached[2]
    pillar = (__opts__.get("pillar") or {}).get(kubesalt_core.pillar.PILLAR_KEY) or {}
    managed = kubesalt_core.components.managed_units(
        kubesalt_core.pillar.roles_of(pillar, __opts__["id"])
    )
    store = kubesalt_core.heal_store.Store(kubesalt_core.heal_store.heal_dir(pillar.get("paths")))
    __context__["kubesalt_journal.node"] = (time.monotonic(), managed, store)
    return managed, store


def beacon(config):
    """Read what the journal got since the last call; return the failure events."""
    options = _merged(config)
    managed, store = _node()
    if not managed:
        return []
    cursor = store.cursor()
    if cursor is None:
        tail = kubesalt_core.systemd.journal_tail_cursor()
        if tail:
            store.save_cursor(tail)
            log.info("kubesalt_journal: following the journal from its end")
        return []
    try:
        entries = kubesalt_core.systemd.failures_after(cursor, options.get("max_entries", 500))
    except kubesalt_core.errors.SystemdError as err:
        log.warning("kubesalt_journal: %s", err)
        return []
    if not entries:
        return []
    named = {e.get("UNIT") for e in entries} & set(managed)
    states = {
        unit: (props.get("ActiveState"), _int(props.get("NRestarts")))
        for unit, props in kubesalt_core.systemd.show(sorted(named)).items()
    }
    failed = [unit for unit, (state, _) in states.items() if state == "failed"]
    notes = {unit: kubesalt_core.systemd.systemd_messages(unit) for unit in failed}
    events = []
    for event in kubesalt_core.heal.failure_events(entries, states, managed, notes):
        if store.in_flight(event["unit"]) or store.paused(event["unit"]):
            continue
        events.append({"tag": "failed", **event})
    # Saved after the events are built and before Salt sends them: a crash in between
    # loses at most this batch, never replays an older one.
    store.save_cursor(entries[-1]["__CURSOR"])
    return events


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
