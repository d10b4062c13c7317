"""The healing loop's parts around the decision core: the beacon's configuration check and
its reading of a real failure sequence, the node's store (history, one repair per unit),
and the scheduled highstate's ordering and drift summary."""

import os

import pytest
import yaml

import kubesalt_core.errors
from kubesalt_core import heal, heal_store, systemd
from kubesalt_ext.beacons import kubesalt_journal as beacon
from kubesalt_ext.runners import kubesalt_schedule as schedule
from tests.conftest import STATES_DIR

MANAGED = {"etcd.service": "etcd"}


@pytest.mark.parametrize(
    "config",
    [[{"interval": 2}], [{"interval": 2}, {"max_entries": 500}], []],
)
def test_the_beacon_accepts_its_options(config):
    assert beacon.validate(config) == (True, "valid beacon configuration")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"interval": 2}, "configuration must be a list of mappings"),
        ([{"max_entrys": 5}], "unknown option 'max_entrys'; expected one of:"),
        ([{"max_entries": 0}], "max_entries must be a whole number of journal entries"),
        ([{"max_entries": "500"}], "got '500'"),
    ],
)
def test_the_beacon_rejects_bad_options_by_name(config, message):
    ok, said = beacon.validate(config)
    assert not ok
    assert said.startswith("kubesalt_journal: ") and message in said


def _entries():
    """What PID 1 logged when etcd, its start limit used up, was SIGKILLed (read from a lab
    host's journal with the beacon's filter: _PID=1 and the two failure MESSAGE_IDs)."""
    base = {"_PID": "1", "UNIT": "etcd.service"}
    return [
        {
            **base,
            "MESSAGE_ID": heal.UNIT_FAILED,
            "UNIT_RESULT": "signal",
            "INVOCATION_ID": "a" * 32,
            "MESSAGE": "etcd.service: Failed with result 'signal'.",
            "__REALTIME_TIMESTAMP": "1764032000100000",
            "__CURSOR": "c1",
        },
        {
            **base,
            "MESSAGE_ID": heal.UNIT_FAILED,
            "UNIT_RESULT": "signal",
            "INVOCATION_ID": "b" * 32,
            "MESSAGE": "etcd.service: Failed with result 'signal'.",
            "__REALTIME_TIMESTAMP": "1764032005200000",
            "__CURSOR": "c2",
        },
        {
            **base,
            "MESSAGE_ID": heal.START_FAILED,
            "JOB_RESULT": "failed",
            "MESSAGE": "Failed to start etcd.service - etcd member master-2 of cluster lab.",
            "__REALTIME_TIMESTAMP": "1764032005200100",
            "__CURSOR": "c3",
        },
    ]


def test_a_start_limit_sequence_is_one_event_from_its_first_failure():
    notes = {"etcd.service": ["etcd.service: Start request repeated too quickly."]}
    events = heal.failure_events(_entries(), {"etcd.service": ("failed", 1)}, MANAGED, notes)
    assert events == [
        {
            "unit": "etcd.service",
            "result": "start-limit-hit",
            "invocation_id": "b" * 32,
            "time": 1764032000.1,
            "restarts": 1,
        }
    ]


def test_without_the_start_limit_text_the_units_own_result_stays():
    (event,) = heal.failure_events(_entries(), {"etcd.service": ("failed", 1)}, MANAGED)
    assert event["result"] == "signal"


def test_a_unit_systemd_is_restarting_gives_no_event():
    assert heal.failure_events(_entries(), {"etcd.service": ("activating", 1)}, MANAGED) == []


def test_show_output_is_read_per_unit():
    text = (
        "Id=etcd.service\nActiveState=failed\nNRestarts=1\n\nId=bird.service\nActiveState=active\n"
    )
    assert systemd.parse_show(text) == {
        "etcd.service": {"Id": "etcd.service", "ActiveState": "failed", "NRestarts": "1"},
        "bird.service": {"Id": "bird.service", "ActiveState": "active"},
    }


def test_the_store_keeps_history_across_instances(tmp_path):
    heal_store.Store(tmp_path).record(heal.Attempt("etcd.service", 10.0, "restart", False, "x"))
    heal_store.Store(tmp_path).record(heal.Attempt("etcd.service", 20.0, "restart", True))
    attempts = heal_store.Store(tmp_path).history()
    assert [(a.at, a.action, a.held, a.detail) for a in attempts] == [
        (10.0, "restart", False, "x"),
        (20.0, "restart", True, ""),
    ]
    assert oct(os.stat(tmp_path / "history.jsonl").st_mode & 0o777) == "0o600"


def test_a_torn_history_line_is_skipped(tmp_path):
    store = heal_store.Store(tmp_path)
    store.record(heal.Attempt("etcd.service", 10.0, "restart", True))
    with open(tmp_path / "history.jsonl", "a") as handle:
        handle.write('{"unit": "etcd.serv')
    assert [a.at for a in store.history()] == [10.0]


def test_one_repair_per_unit(tmp_path):
    store = heal_store.Store(tmp_path)
    with store.repairing("etcd.service"):
        assert store.in_flight("etcd.service") == os.getpid()
        with pytest.raises(kubesalt_core.errors.InFlight), store.repairing("etcd.service"):
            pass
        with store.repairing("containerd.service"):  # another unit is not held up
            pass
    assert store.in_flight("etcd.service") is None
    with store.repairing("etcd.service"):  # released when the first ended
        pass


def test_a_dead_repairs_marker_is_not_in_flight(tmp_path):
    (tmp_path / "etcd.service.inflight").write_text("999999999")
    assert heal_store.Store(tmp_path).in_flight("etcd.service") is None


def test_a_pause_lasts_until_resumed_or_expired(tmp_path):
    store = heal_store.Store(tmp_path)
    assert store.paused("kube-apiserver.service") is None
    store.pause("kube-apiserver.service", "kubesalt.orch.etcd_restore", 60)
    assert store.paused("kube-apiserver.service")["by"] == "kubesalt.orch.etcd_restore"
    assert store.paused("etcd.service") is None  # another unit is not paused
    assert store.resume("kube-apiserver.service") is True
    assert store.paused("kube-apiserver.service") is None
    assert store.resume("kube-apiserver.service") is False
    store.pause("etcd.service", "a restore that stopped half-way", -1)
    assert store.paused("etcd.service") is None  # expired: repairs go on by themselves


def test_scheduled_runs_go_masters_first():
    roles = {
        "router-1": ["router"],
        "worker-2": ["worker"],
        "master-1": ["master"],
        "stranger": [],
        "worker-1": ["worker"],
        "down": "Minion did not return. [No response]",
    }
    assert schedule.waves(roles) == [
        ["master-1"],
        ["worker-1", "worker-2"],
        ["router-1"],
        ["down", "stranger"],
    ]


def test_a_runs_summary_names_what_changed_and_failed():
    ret = {
        "file_|-a_|-/etc/x_|-managed": {
            "__id__": "a",
            "result": True,
            "changes": {"diff": 1},
            "__run_num__": 1,
        },
        "file_|-b_|-/etc/y_|-managed": {
            "__id__": "b",
            "result": True,
            "changes": {},
            "__run_num__": 0,
        },
        "service_|-c_|-c_|-running": {
            "__id__": "c",
            "result": False,
            "changes": {},
            "__run_num__": 2,
        },
    }
    assert schedule.summarize(ret) == {"changed": ["a"], "failed": ["c"]}
    assert schedule.summarize(["Rendering SLS failed"]) == {"error": "Rendering SLS failed"}
    assert schedule.summarize("no answer") == {"error": "no answer"}


def test_a_scheduled_run_leaves_alone_a_minion_with_a_paused_unit():
    pause = {"by": "kubesalt.orch.etcd_restore", "until": "2026-12-05T22:00:00+00:00"}
    answers = {
        "master-2": {"kube-apiserver.service": pause, "etcd.service": pause},
        "master-1": {},
        "master-3": "Minion did not return. [No response]",
    }
    assert schedule.held(answers) == {
        "master-2": "etcd.service paused by kubesalt.orch.etcd_restore until "
        "2026-12-05T22:00:00+00:00; kube-apiserver.service paused by "
        "kubesalt.orch.etcd_restore until 2026-12-05T22:00:00+00:00"
    }
    assert schedule.held({}) == {}


def test_the_beacons_default_heal_dir_is_the_formulas():
    defaults = yaml.safe_load((STATES_DIR / "kubesalt" / "defaults.yaml").read_text())
    assert defaults["paths"]["heal_dir"] == heal_store.DEFAULT_HEAL_DIR
    assert heal_store.heal_dir({"root": "/tmp/x"}) == "/tmp/x/var/lib/kubesalt/heal"
    assert heal_store.heal_dir({"heal_dir": "/srv/heal"}) == "/srv/heal"


class _FakeJournal:
    """The journal as the beacon sees it through kubesalt_core.systemd (decision logic only: the
    lab tests run the beacon against real journals)."""

    def __init__(self, entries):
        self.entries = entries
        self.asked_after = []

    def tail(self):
        return self.entries[-1]["__CURSOR"]

    def after(self, cursor, max_entries):
        self.asked_after.append(cursor)
        cursors = [e["__CURSOR"] for e in self.entries]
        return self.entries[cursors.index(cursor) + 1 :][:max_entries]


def _run_beacon(monkeypatch, journal, heal_dir, states):
    """One beacon() call in a fresh minion process (empty __context__)."""
    pillar = {
        "kubesalt": {
            "nodes": {"master-2": {"roles": ["master"]}},
            "paths": {"heal_dir": str(heal_dir)},
        }
    }
    monkeypatch.setattr(beacon, "__opts__", {"id": "master-2", "pillar": pillar}, raising=False)
    monkeypatch.setattr(beacon, "__context__", {}, raising=False)
    monkeypatch.setattr(systemd, "journal_tail_cursor", journal.tail)
    monkeypatch.setattr(systemd, "failures_after", journal.after)
    monkeypatch.setattr(systemd, "show", lambda units: {u: states[u] for u in units if u in states})
    monkeypatch.setattr(systemd, "systemd_messages", lambda unit: [])
    return beacon.beacon([{"interval": 2}])


def test_the_beacon_starts_at_the_end_and_resumes_from_its_cursor(monkeypatch, tmp_path):
    old = {"__CURSOR": "c0", "MESSAGE_ID": heal.UNIT_FAILED, "UNIT": "etcd.service"}
    journal = _FakeJournal([old])
    failed = {"etcd.service": {"ActiveState": "failed", "NRestarts": "4"}}
    # A new node: what the journal held before is not news.
    assert _run_beacon(monkeypatch, journal, tmp_path, failed) == []
    assert journal.asked_after == []
    # Written while the minion was down; the restarted minion reads after its saved cursor.
    journal.entries += _entries()
    (event,) = _run_beacon(monkeypatch, journal, tmp_path, failed)
    assert (event["tag"], event["unit"], event["restarts"]) == ("failed", "etcd.service", 4)
    assert journal.asked_after == ["c0"]
    # Read once: the next start resumes after the last entry, nothing is replayed.
    assert _run_beacon(monkeypatch, journal, tmp_path, failed) == []
    assert journal.asked_after == ["c0", "c3"]


def test_the_beacon_is_quiet_while_kubesalt_repairs_the_unit(monkeypatch, tmp_path):
    journal = _FakeJournal([{"__CURSOR": "c0"}])
    failed = {"etcd.service": {"ActiveState": "failed", "NRestarts": "4"}}
    _run_beacon(monkeypatch, journal, tmp_path, failed)
    journal.entries += _entries()
    with heal_store.Store(str(tmp_path)).repairing("etcd.service"):
        assert _run_beacon(monkeypatch, journal, tmp_path, failed) == []


def test_a_log_is_trimmed_to_its_newest_lines(tmp_path):
    import kubesalt_core.files

    path = tmp_path / "logs" / "drift.jsonl"
    for i in range(5):
        kubesalt_core.files.append_line(str(path), f'{{"run": {i}}}', keep=2)
    assert path.read_text().splitlines() == ['{"run": 3}', '{"run": 4}']
    assert oct(path.stat().st_mode & 0o777) == "0o600"
