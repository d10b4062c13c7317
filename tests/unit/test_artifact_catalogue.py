"""The artifact catalogue as data, and the decision what to (re)install."""

import pytest

import kubesalt_core.components
import kubesalt_core.pillar
from kubesalt_core import artifact as ka

SPEC = {"source": "url", "url": "http://127.0.0.1/k.tgz", "sha256": "b" * 64}


def test_every_unit_a_role_runs_has_its_binary_for_that_role():
    for role in kubesalt_core.pillar.ROLES:
        units = kubesalt_core.components.managed_units([role])
        provided = {
            u for b in ka.for_roles([role]) for u in kubesalt_core.components.units_of_binary(b)
        }
        # A binary's units may belong to several roles (BIRD: calico-bird, bird).
        assert units and set(units) <= provided, role


def test_a_changed_binary_restarts_exactly_the_units_that_run_it():
    assert kubesalt_core.components.units_of_binary(ka.binary("calico-node")) == (
        "calico-node.service",
        "calico-felix.service",
        "calico-confd.service",
    )
    assert kubesalt_core.components.units_of_binary(ka.binary("bird")) == (
        "calico-bird.service",
        "bird.service",
    )
    assert kubesalt_core.components.units_of_binary(ka.binary("birdc")) == ()
    assert kubesalt_core.components.units_of_binary(ka.binary("etcd")) == ("etcd.service",)
    assert kubesalt_core.components.units_of_binary(ka.binary("kubectl")) == ()


def test_catalogue_names_are_unique_and_artifacts_are_known_to_the_pillar():
    names = [b.name for b in ka.CATALOGUE]
    assert len(names) == len(set(names))
    assert set(ka.ARTIFACTS) <= set(kubesalt_core.pillar.ARTIFACT_NAMES)
    assert {b.dest for b in ka.CATALOGUE} <= set(kubesalt_core.pillar.PATH_KEYS)


def test_roles_get_their_binaries():
    master = [b.name for b in ka.for_roles(["master"])]
    worker = [b.name for b in ka.for_roles(["worker"])]
    assert {"kube-apiserver", "etcd", "calico-typha", "kubectl"} <= set(master)
    assert "kubelet" not in master
    assert {"kubelet", "kube-proxy", "containerd", "runc", "crictl", "bridge"} <= set(worker)
    assert [b.name for b in ka.for_roles(["router"])] == ["bird", "birdc"]


def test_members_come_from_the_catalogue_unless_pillar_says_otherwise():
    etcd = ka.binary("etcd")
    assert ka.member_of(etcd, SPEC, "3.5.1") == "etcd-v3.5.1-linux-amd64/etcd"
    spec = {**SPEC, "members": {"etcd": "bin/etcd-{version}"}}
    assert ka.member_of(etcd, spec, "3.5.1") == "bin/etcd-3.5.1"
    assert ka.member_of(ka.binary("runc"), SPEC, "1.3.1") == ""  # the download is the binary
    with pytest.raises(KeyError, match="'kube-apiservr' is not in the artifact catalogue"):
        ka.binary("kube-apiservr")


def test_plan_reasons():
    record = ka.record_for(SPEC, "1.37.0", "kubernetes/server/bin/kubelet", "c" * 64)
    assert ka.plan(SPEC, "1.37.0", None, record) == "missing"
    assert ka.plan(SPEC, "1.37.0", "c" * 64, None) == "not installed by kubesalt"
    assert ka.plan(SPEC, "1.37.0", "c" * 64, record) is None
    assert (
        ka.plan(SPEC, "1.37.0", "d" * 64, record) == "changed on disk since kubesalt installed it"
    )
    bumped = {**SPEC, "sha256": "e" * 64}
    assert ka.plan(bumped, "1.37.1", "c" * 64, record) == "new artifact: 1.37.0 -> 1.37.1"
    assert ka.plan(bumped, "1.37.0", "c" * 64, record) == "new artifact sha256"


def test_a_path_source_is_the_binary_or_the_directory_of_several():
    config = {"paths": {"bin_dir": "/usr/local/bin", "cni_bin_dir": "/opt/cni/bin"}}
    config["artifacts"] = {
        "calico_node": {"source": "path", "path": "/opt/calico/calico-node"},
        "kubernetes": {"source": "path", "path": "/opt/k8s/bin/"},
        "containerd": {"source": "package", "package": "containerd"},
        "runc": {"source": "package", "package": "runc"},
    }
    assert ka.executable(config, "calico_node", "calico-node") == "/opt/calico/calico-node"
    assert ka.executable(config, "kubernetes", "kubelet") == "/opt/k8s/bin/kubelet"
    assert ka.executable(config, "containerd", "containerd") == "/usr/bin/containerd"
    assert ka.executable(config, "runc", "runc") == "/usr/sbin/runc"
    assert ka.executable(config, "crictl", "crictl") == "/usr/local/bin/crictl"
    assert ka.available(config, "kubernetes") and not ka.available(config, "crictl")
    assert not ka.available(config, "etcd")


@pytest.mark.parametrize(
    ("spec", "bird", "birdc"),
    [
        # a site's archive of BIRD's `make install`: both programs come from it
        (SPEC, "/usr/local/bin/bird", "/usr/local/bin/birdc"),
        # a directory on the host holding both
        (
            {"source": "path", "path": "/opt/bird/sbin"},
            "/opt/bird/sbin/bird",
            "/opt/bird/sbin/birdc",
        ),
        ({"source": "package", "package": "bird2"}, "/usr/sbin/bird", "/usr/sbin/birdc"),
    ],
    ids=["url", "path", "package"],
)
def test_birdc_comes_with_bird_from_every_source(spec, bird, birdc):
    config = {"paths": {"bin_dir": "/usr/local/bin"}, "artifacts": {"bird": spec}}
    assert (ka.executable(config, "bird", "bird"), ka.executable(config, "bird", "birdc")) == (
        bird,
        birdc,
    )
    if spec["source"] == "url":
        assert [ka.member_of(ka.binary(n), spec, "2.0.12") for n in ("bird", "birdc")] == [
            "sbin/bird",
            "sbin/birdc",
        ]
