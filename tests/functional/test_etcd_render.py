"""The etcd SLS as rendered for master-1 (state.show_sls: nothing is applied): each artifact
source gives its install states, and the unit and config carry what the README promises."""

import pytest

from kubesalt_lab.pillar import lab_pillar

SHA = "a" * 64
URL = {"source": "url", "url": "https://artifacts.example.internal/etcd.tar.gz", "sha256": SHA}


def _show(loaders, tmp_path, artifact):
    pillar = lab_pillar()
    pillar["paths"] = {"root": str(tmp_path)}
    pillar["artifacts"]["etcd"] = artifact
    ret = loaders.modules.state.show_sls("kubesalt.etcd", pillar={"kubesalt": pillar})
    assert isinstance(ret, dict), ret
    return ret


def _args(state):
    """The state's function name and its arguments as one dict."""
    for key, value in state.items():
        if not key.startswith("__"):
            args = {}
            for item in value:
                if isinstance(item, dict):
                    args.update(item)
            fun = next(i for i in value if isinstance(i, str))
            return f"{key}.{fun}", args
    raise AssertionError(state)


@pytest.mark.parametrize(
    ("artifact", "expected"),
    [
        ({"source": "package", "package": "etcd-server"}, "pkg.installed"),
        ({"source": "path", "path": "/opt/etcd"}, "file.exists"),
        (URL, "kubesalt_artifact.installed"),
    ],
)  # fmt: skip
def test_each_artifact_source_installs_its_way(loaders, tmp_path, artifact, expected):
    shown = _show(loaders, tmp_path, artifact)
    fun, args = _args(shown["kubesalt-etcd-installed"])
    assert fun == expected
    if artifact["source"] == "path":
        # etcd ships two binaries: the path is the directory holding them.
        assert args["name"] == "/opt/etcd/etcd"
    if artifact["source"] == "url":
        _, args = _args(shown["kubesalt-etcd-installed"])
        assert args["name"] == "etcd"
        fun, args = _args(shown["kubesalt-etcd-etcdctl-installed"])
        assert (fun, args["name"]) == ("kubesalt_artifact.installed", "etcdctl")
        # A new etcd binary restarts etcd; a new etcdctl does not.
        _, member = _args(shown["kubesalt-etcd-member-present"])
        assert "kubesalt-etcd-installed" in member["watch"]
        assert "kubesalt-etcd-etcdctl-installed" not in str(member["watch"])


def test_member_state_gets_the_live_decision_inputs(loaders, tmp_path):
    shown = _show(loaders, tmp_path, {"source": "package", "package": "etcd-server"})
    fun, args = _args(shown["kubesalt-etcd-member-present"])
    assert fun == "kubesalt_etcd.member_present"
    assert args["peer_urls"] == ["https://198.18.0.11:2380"]
    assert sorted(args["founders"]) == ["master-1", "master-2", "master-3"]
    assert args["data_dir"] == f"{tmp_path}/var/lib/etcd"
    fun, data_dir = _args(shown["kubesalt-etcd-data-dir-managed"])
    # etcd's user, its data dir and its TLS copies: one state, told the data dir.
    assert fun == "kubesalt_etcd.owned"
    assert data_dir["name"] == f"{tmp_path}/var/lib/etcd"


def test_no_artifact_fails_with_the_key_named(loaders, tmp_path):
    pillar = lab_pillar()
    pillar["paths"] = {"root": str(tmp_path)}
    pillar["artifacts"].pop("etcd", None)
    shown = loaders.modules.state.show_sls("kubesalt.etcd", pillar={"kubesalt": pillar})
    fun, args = _args(shown["kubesalt-etcd-installed"])
    assert fun == "test.fail_without_changes"
    assert "artifacts:etcd is not set" in args["name"]


def test_the_unit_and_its_config_come_from_etcds_component_record(loaders, tmp_path):
    shown = _show(loaders, tmp_path, URL)
    _, unit = _args(shown["kubesalt-etcd-unit-managed"])
    assert unit["name"] == f"{tmp_path}/etc/systemd/system/etcd.service"
    text = unit["contents"]
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        f"EnvironmentFile={tmp_path}/etc/etcd/etcd.env",
        f"EnvironmentFile=-{tmp_path}/etc/etcd/cluster.env",
        f"ExecStart={tmp_path}/usr/local/bin/etcd",
        f"ReadWritePaths={tmp_path}/var/lib/etcd",
        "ProtectSystem=strict",
        "StandardOutput=journal",
    ):
        assert line in text.splitlines(), line
    _, env = _args(shown["kubesalt-etcd-config-managed"])
    assert "ETCD_NAME=master-1" in env["contents"].splitlines()
    assert "ETCD_STRICT_RECONFIG_CHECK=true" in env["contents"].splitlines()
