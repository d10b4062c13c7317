"""The lab's pure parts: reading its pillar, summarising highstates, unit states, CLI."""

import re

import pytest
import yaml

from kubesalt_lab import cli, config, containers, converge, lifecycle, master, report, rootfs


def test_lab_comes_from_the_example_pillar():
    lab = config.load(cache_dir="/c", run_dir="/r")
    assert [n.id for n in lab.ordered_nodes()] == [
        "master-1",
        "master-2",
        "master-3",
        "worker-1",
        "worker-2",
        "router-1",
    ]
    assert lab.bridge_ip == "198.18.0.1"
    assert all(len(n.veth_host) <= 15 and len(n.veth_peer) <= 15 for n in lab.nodes)
    assert len({n.veth_host for n in lab.nodes}) == len(lab.nodes)


def test_masters_are_applied_together_then_the_workers_then_the_routers():

    lab = config.load(cache_dir="/c", run_dir="/r")
    waves = [[n.id for n in wave] for wave in converge.apply_waves(lab)]
    assert waves == [
        ["master-1", "master-2", "master-3"],
        ["worker-1", "worker-2"],
        ["router-1"],
    ]
    only = [[n.id for n in wave] for wave in converge.apply_waves(lab, ["master", "router"])]
    assert only == [["master-1", "master-2", "master-3"], ["router-1"]]
    together = [[n.id for n in wave] for wave in converge.apply_waves(lab, together=True)]
    assert together == [["master-1", "master-2", "master-3", "worker-1", "worker-2", "router-1"]]
    workers = converge.apply_waves(lab, ["worker"], together=True)
    assert [[n.id for n in wave] for wave in workers] == [["worker-1", "worker-2"]]
    assert converge.apply_waves(lab, ["nothing-has-this-role"], together=True) == []


def test_lab_refuses_addresses_outside_the_benchmarking_range(tmp_path):
    pillar = tmp_path / "lab.sls"
    pillar.write_text(
        "kubesalt:\n  network: {node_cidr: 10.1.0.0/24, pod_cidr: 10.2.0.0/16,\n"
        "    service_cidr: 10.3.0.0/16, cluster_dns_ip: 10.3.0.10}\n"
        "  nodes: {m: {roles: [master], ip: 10.1.0.5}}\n"
    )
    with pytest.raises(config.LabError, match=r"outside 198\.18\.0\.0/15"):
        config.load(pillar_file=pillar)


def test_summarize_highstate_counts_ok_changed_failed():
    ret = {
        "a": {"__id__": "a", "result": True, "changes": {}, "duration": 1.5},
        "b": {"__id__": "b", "result": True, "changes": {"x": 1}, "duration": 2},
        "c": {"__id__": "c", "result": False, "changes": {}, "comment": "boom", "duration": 1},
        "d": {"__id__": "d", "result": None, "changes": {"y": 1}},
    }
    summary = report.summarize_highstate(ret)
    assert (summary["ok"], summary["changed"], summary["failed"]) == (1, 2, 1)
    assert summary["errors"] == ["c: boom"]
    assert summary["duration_ms"] == 4.5


def test_summarize_render_errors():
    summary = report.summarize_highstate(["Rendering SLS 'x' failed"])
    assert summary["errors"] == ["Rendering SLS 'x' failed"]
    assert report.summarize_highstate("Minion did not return")["errors"] == [
        "Minion did not return"
    ]


@pytest.mark.parametrize(
    ("props", "declared", "expected"),
    [
        ({"LoadState": "not-found"}, None, report.NOT_IN_LAB),
        ({"LoadState": "not-found"}, {"source": "package"}, "not installed yet"),
        (
            {"LoadState": "loaded", "ActiveState": "inactive", "SubState": "dead"},
            None,
            f"{report.NOT_IN_LAB} (unit installed, inactive (dead))",
        ),
        (
            {
                "LoadState": "loaded",
                "ActiveState": "active",
                "SubState": "running",
                "UnitFileState": "enabled",
            },
            {"source": "package"},
            "active (running), enabled",
        ),
    ],
)
def test_unit_state(props, declared, expected):
    assert report.unit_state(props, declared) == expected


def test_parse_systemctl_show_splits_units():
    text = "Id=a.service\nLoadState=loaded\n\nId=b.service\nLoadState=not-found\n"
    assert report.parse_systemctl_show(text) == [
        {"Id": "a.service", "LoadState": "loaded"},
        {"Id": "b.service", "LoadState": "not-found"},
    ]


def test_table_aligns_columns():
    assert report.table(["a", "bb"], [["xxx", 1]]).splitlines() == ["a    bb", "---  --", "xxx  1"]


def test_debian_mirror_is_read_from_the_hosts_apt_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.invalid/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    assert rootfs.debian_mirror(tmp_path) == "http://mirror.invalid/debian"
    with pytest.raises(config.LabError, match="no Debian bookworm main mirror"):
        rootfs.debian_mirror(tmp_path / "nothing")


@pytest.mark.parametrize(
    "command", ["build", "up", "apply", "status", "shell", "stop", "start", "pillar", "down"]
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"kubesalt-lab {command}" in capsys.readouterr().out


def test_pillar_settings_parse_as_yaml_and_bad_ones_name_the_setting():
    assert cli.parse_settings(
        ["versions:etcd=3.5.1", "artifacts:etcd={source: path, path: /x}"]
    ) == {
        "versions:etcd": "3.5.1",
        "artifacts:etcd": {"source": "path", "path": "/x"},
    }
    for bad in ["versions:etcd", "=1", "versions::etcd=1", "a={b"]:
        with pytest.raises(config.LabError, match=re.escape(repr(bad))):
            cli.parse_settings([bad])


def test_pillar_override_replaces_values_in_a_copy(tmp_path, monkeypatch):
    lab = config.load(run_dir=tmp_path)
    monkeypatch.setattr(master, "run_salt", lambda *a, **k: {n.id: True for n in lab.nodes})
    package = {"source": "package", "package": "etcd-server"}
    master.override_pillar(lab, {"versions:etcd": "3.4.23", "artifacts:etcd": package})
    overlay = tmp_path / "master" / "pillar"
    top = yaml.safe_load((overlay / "top.sls").read_text())["base"]
    # Every id (the salt-master's own too, for orchestrations) gets the one pillar.
    assert top == {"*": ["lab_pillar"]}
    copy = yaml.safe_load((overlay / "lab_pillar.sls").read_text())["kubesalt"]
    assert copy["versions"]["etcd"] == "3.4.23"
    assert copy["artifacts"]["etcd"] == package  # replaced, not merged
    assert copy["nodes"] == yaml.safe_load(config.LAB_PILLAR.read_text())["kubesalt"]["nodes"]
    master.override_pillar(lab, {})
    copy = yaml.safe_load((overlay / "lab_pillar.sls").read_text())["kubesalt"]
    assert "etcd" not in copy["artifacts"]
    before = (overlay / "lab_pillar.sls").read_text()
    # An override that would make the pillar invalid is refused, naming the key; nothing is
    # written.
    with pytest.raises(config.LabError, match="kubesalt:artifacts:etcd:sha256"):
        master.override_pillar(lab, {"artifacts:etcd": {"source": "url", "url": "http://x/e"}})
    with pytest.raises(
        config.LabError, match=re.escape("kubesalt:artifacts:etcd:source: {'x': 1}")
    ):
        master.override_pillar(lab, {"artifacts:etcd:source:x": 1})  # source is a string
    assert (overlay / "lab_pillar.sls").read_text() == before


def test_failed_orchestration_steps_say_what_each_minion_refused():
    steps = {
        "removed": {"result": True, "comment": "States ran successfully.", "changes": {}},
        "healthy": {
            "result": False,
            "comment": "Run failed on minions: master-3",
            "changes": {
                "ret": {
                    "master-1": {
                        "kubesalt_etcd_|-a_|-etcd_|-healthy": {"result": True, "comment": "ok"}
                    },
                    "master-3": "Passed invalid arguments to state.sls: boom\n" + "doc " * 500,
                }
            },
        },
    }
    failed = master.failed_steps(steps, limit=60)
    assert list(failed) == ["healthy"]
    assert failed["healthy"]["comment"] == "Run failed on minions: master-3"
    assert list(failed["healthy"]["minions"]) == ["master-3"]
    assert failed["healthy"]["minions"]["master-3"].startswith("Passed invalid arguments")
    assert len(failed["healthy"]["minions"]["master-3"]) == 60


def test_up_warns_near_the_kubelets_disk_pressure_threshold():
    from kubesalt_lab import lifecycle

    gib = 1 << 30
    assert lifecycle.disk_warning(252 * gib, 64 * gib, "/var/cache/kubesalt-lab") is None
    said = lifecycle.disk_warning(252 * gib, 36 * gib, "/var/cache/kubesalt-lab")
    assert said.startswith("warning: /var/cache/kubesalt-lab has 14% of its filesystem free")
    assert "DiskPressure" in said
    assert lifecycle.disk_warning(0, 0, "/x").startswith("warning: /x has 0%")


def test_the_lab_knows_its_own_hosts_by_their_disk(tmp_path):
    lab = config.load(cache_dir=tmp_path / "cache", run_dir=tmp_path / "run")
    node = lab.node("master-1")
    root = containers.root_dir(lab, node)
    assert root == tmp_path / "run" / "nodes" / "master-1" / "root"
    assert containers.is_lab_nspawn(lab, ["/usr/bin/systemd-nspawn", f"--directory={root}"])
    other = ["/usr/bin/systemd-nspawn", "--directory=/var/lib/machines/other"]
    assert not containers.is_lab_nspawn(lab, other)
    assert not containers.is_lab_nspawn(lab, ["/bin/sh", f"--directory={root}"])


def test_stop_and_start_need_a_running_lab(tmp_path):
    lab = config.load(cache_dir=tmp_path / "cache", run_dir=tmp_path / "run")
    for action in (lifecycle.stop_host, lifecycle.start_host):
        with pytest.raises(config.LabError, match="the lab is not up"):
            action(lab, "master-1", print)
    assert cli.main(["--run-dir", str(tmp_path / "run"), "stop", "master-9"]) == 2
