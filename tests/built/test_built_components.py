"""The components as the lab builds them: real versions, release layouts the artifact
catalogue can install from, and every flag, config field and variable kubesalt renders
accepted by the built program itself (its ``--help``, its config validation, its start)."""

import subprocess
import tarfile
from dataclasses import replace

import pytest
import yaml

import kubesalt_core.artifact
import kubesalt_core.component_context
import kubesalt_core.control_plane_config
import kubesalt_core.node_config
import kubesalt_core.pki
import kubesalt_core.unit
from kubesalt_lab import build, config, conformance, e2e_images, recipes, toolchain
from tests.support import flags


def _run(argv, env=None, timeout=30):
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env or {}
    )


def _output(argv, env=None, timeout=30):
    proc = _run(argv, env, timeout)
    return proc.stdout + proc.stderr


# --- versions and layouts ------------------------------------------------------------------


def test_every_program_reports_the_version_pillar_pins(programs, lab):
    versions = lab.versions()
    k8s = f"v{versions['kubernetes']}"
    expected = {
        ("kube-apiserver", "--version"): f"Kubernetes {k8s}",
        ("kube-controller-manager", "--version"): f"Kubernetes {k8s}",
        ("kube-scheduler", "--version"): f"Kubernetes {k8s}",
        ("kubelet", "--version"): f"Kubernetes {k8s}",
        ("kube-proxy", "--version"): f"Kubernetes {k8s}",
        ("kubectl", "version", "--client"): f"Client Version: {k8s}",
        ("etcd", "--version"): f"etcd Version: {versions['etcd']}",
        ("etcdctl", "version"): f"etcdctl version: {versions['etcd']}",
        ("containerd", "--version"): f" v{versions['containerd']}",
        ("runc", "--version"): f"runc version {versions['runc']}",
        ("crictl", "--version"): f"crictl version v{versions['crictl']}",
        ("calico-node", "-v"): f"v{versions['calico']}",
        ("calico-typha", "--version"): f"v{versions['calico']}",
        ("coredns", "-version"): f"CoreDNS-{versions['coredns']}",
    }
    for (name, *args), wanted in expected.items():
        said = _output([programs[name], *args])
        assert wanted in said, (name, said[:300])
    bridge = _run([programs["bridge"]], env={"CNI_COMMAND": "VERSION"})
    assert '"cniVersion"' in bridge.stdout
    assert f"v{versions['cni_plugins']}" in _output([programs["bridge"], "--version"])


def test_release_files_hold_every_member_the_artifact_catalogue_installs(built, lab):
    versions = lab.versions()
    files = {item.artifact: item for found in built.values() for item in found}
    for binary in kubesalt_core.artifact.CATALOGUE:
        item = files.get(binary.artifact)
        if item is None:  # bird and haproxy: Debian's packages
            assert binary.artifact in ("bird", "haproxy"), binary.name
            continue
        version = str(versions[kubesalt_core.artifact.version_key(binary.artifact)])
        member = kubesalt_core.artifact.member_of(binary, {}, version)
        if not member:  # the download is the file itself
            assert not item.path.name.endswith((".tar.gz", ".tgz")), binary.name
            continue
        with tarfile.open(item.path) as archive:
            assert member in archive.getnames(), (binary.name, member, item.path.name)
        assert build.file_sha256(item.path) == item.sha256


def test_the_kubernetes_archive_is_laid_out_as_upstream_releases_it(built):
    (server,) = built["kubernetes"]
    assert server.path.name == "kubernetes-server-linux-amd64.tar.gz"
    with tarfile.open(server.path) as archive:
        names = set(archive.getnames())
    for name in recipes.KUBE_SERVER_BINARIES:
        assert f"kubernetes/server/bin/{name}" in names


def test_calico_crds_come_from_the_pinned_module(built, lab):
    crds = next(b for b in built["calico"] if b.artifact == "calico_crds")
    documents = [d for d in yaml.safe_load_all(crds.path.read_text()) if d]
    names = {d["metadata"]["name"] for d in documents}
    for kind in ("bgpconfigurations", "bgppeers", "ippools", "clusterinformations", "tiers"):
        assert f"{kind}.crd.projectcalico.org" in names


def test_a_second_build_of_the_same_versions_reuses_the_first(built, lab):
    said = []
    again, _rows = build.build_all(lab.cache_dir, lab.versions(), said.append)
    assert {k: [b.sha256 for b in v] for k, v in again.items()} == {
        k: [b.sha256 for b in v] for k, v in built.items()
    }
    assert sum("cached" in line for line in said) == len(recipes.RECIPES), said


def test_an_unknown_version_fails_before_anything_is_built_and_names_what_exists(lab):
    said = []
    versions = {**lab.versions(), "kubernetes": "1.99.0"}
    with pytest.raises(build.BuildError) as failure:
        build.build_all(lab.cache_dir, versions, said.append)
    message = str(failure.value)
    assert message.startswith("versions:kubernetes: 1.99.0 cannot be built")
    assert "k8s.io/kubernetes v1.99.0" in message
    # What the proxy lists (it may not list every version it serves).
    assert "it has: " in message and "1.37." in message.split("it has: ")[1]
    assert not [line for line in said if line.startswith("build ")], said
    versions = {**lab.versions(), "calico": "3.32.1"}
    with pytest.raises(
        build.BuildError,
        match=r"versions:calico: 3\.32\.1 cannot be built.*"
        r"buildable: 3\.30\.1, 3\.31\.0",
    ):
        build.build_all(lab.cache_dir, versions, said.append)


def test_a_failed_build_names_its_component_and_keeps_the_earlier_build(built, lab):
    go = toolchain.ensure(lab.cache_dir, lambda _m: None)
    earlier = built["crictl"][0]
    broken = replace(
        recipes.CRICTL,
        programs=(recipes.Program("crictl", "sigs.k8s.io/cri-tools/cmd/no-such-command"),),
    )
    with pytest.raises(build.BuildError) as failure:
        build.build_component(go, lab.cache_dir, broken, lab.versions()["crictl"], lambda _m: None)
    message = str(failure.value)
    assert "build of crictl" in message and "sigs.k8s.io/cri-tools" in message
    assert "no-such-command" in message  # the compiler's own words
    assert earlier.path.is_file() and build.file_sha256(earlier.path) == earlier.sha256


# --- flags, config fields and variables, asked of the programs -------------------------------


@pytest.mark.parametrize("node_id", ["master-1", "master-2", "worker-1"])
def test_every_flag_kubesalt_renders_is_one_the_program_lists(cluster, programs, node_id):
    for rendered in kubesalt_core.unit.node_units(cluster, node_id):
        component = rendered.unit
        names = flags.flag_names(rendered.argv)
        if not names:
            continue
        known = flags.help_flags(_output([programs[component.binary], "--help"]))
        assert known, component.name
        assert sorted(set(names) - known) == [], component.name


def test_every_etcd_variable_is_a_flag_etcd_lists(cluster, programs):
    rendered = kubesalt_core.unit.render(cluster, "master-1", "etcd")
    (env_text,) = rendered.files.values()
    variables = [line.split("=", 1)[0] for line in env_text[0].splitlines() if "=" in line]
    known = flags.help_flags(_output([programs["etcd"], "--help"]))
    assert variables and all(v.startswith("ETCD_") for v in variables)
    assert sorted(v for v in variables if flags.etcd_flag(v) not in known) == []


def test_the_flag_checks_catch_what_a_program_does_not_know(programs):
    known = flags.help_flags(_output([programs["kube-apiserver"], "--help"]))
    assert "etcd-servers" in known and "insecure-port" not in known
    assert flags.etcd_flag("ETCD_LISTEN_PEER_URLS") in flags.help_flags(
        _output([programs["etcd"], "--help"])
    )


def _written(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return path


def test_kube_proxy_validates_the_configuration_kubesalt_writes(cluster, programs, tmp_path):
    ctx = kubesalt_core.component_context.Context(
        cluster, "worker-1", kubesalt_core.pki.Layout.of(cluster)
    )
    document = kubesalt_core.node_config.kube_proxy_configuration(ctx)
    path = _written(tmp_path, "kube-proxy.yaml", document)
    argv = [programs["kube-proxy"], "--config", path, "--write-config-to", tmp_path / "out"]
    proc = _run(argv)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert "strict decoding error" not in proc.stderr, proc.stderr[-1000:]
    # The same check refuses what kube-proxy would refuse.
    bad = _written(tmp_path, "bad.yaml", {**document, "mode": "ipvz", "bogus": 1})
    proc = _run([programs["kube-proxy"], "--config", bad, "--write-config-to", tmp_path / "o2"])
    assert proc.returncode != 0 and 'unknown field \\"bogus\\"' in proc.stderr


def _kubelet_says(programs, path, tmp_path):
    # The kubelet decodes and validates its config first; a missing kubeconfig then stops it.
    argv = [programs["kubelet"], "--config", path, "--kubeconfig", tmp_path / "none"]
    return _output(argv, timeout=60)


def test_the_kubelet_accepts_the_configuration_kubesalt_writes(cluster, programs, tmp_path):
    ctx = kubesalt_core.component_context.Context(
        cluster, "worker-1", kubesalt_core.pki.Layout.of(cluster)
    )
    document = kubesalt_core.node_config.kubelet_configuration(ctx)
    assert cluster["kubelet"]["fail_cgroup_v1"] is False  # the lab's kernel: cgroup v1
    said = _kubelet_says(programs, _written(tmp_path, "kubelet.yaml", document), tmp_path)
    assert "Effective KubeletConfiguration" in said, said[-1000:]
    assert "strict decoding error" not in said
    assert "failed to validate kubelet configuration" not in said
    # Upstream's default refuses this machine's cgroup v1, as kubesalt's default does.
    upstream = {**document, "failCgroupV1": True}
    said = _kubelet_says(programs, _written(tmp_path, "default.yaml", upstream), tmp_path)
    assert "kubelet is configured to not run on a host using cgroup v1" in said
    bad = {**document, "bogusField": 1}
    said = _kubelet_says(programs, _written(tmp_path, "bad.yaml", bad), tmp_path)
    assert 'unknown field \\"bogusField\\"' in said


def _started(program, argv, env, seconds=6):
    """What a Calico program logged in its first seconds with ``env`` (it then fails to
    reach a datastore, which is not what is checked)."""
    try:
        proc = subprocess.run(
            [str(program), *argv], capture_output=True, text=True, timeout=seconds, env=env
        )
        return proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        return (err.stdout or b"").decode() + (err.stderr or b"").decode()


def _existing_files(env, tmp_path):
    """The environment with every file it names replaced by an existing (empty) file, so
    the loaders parse them instead of refusing a missing path."""
    placeholder = tmp_path / "placeholder"
    placeholder.write_text("")
    return {k: (str(placeholder) if v.startswith("/") else v) for k, v in env.items()}


def test_typha_parses_every_variable_kubesalt_sets(cluster, programs, tmp_path):
    ctx = kubesalt_core.component_context.Context(
        cluster, "master-1", kubesalt_core.pki.Layout.of(cluster)
    )
    env = _existing_files(kubesalt_core.control_plane_config.typha_environment(ctx), tmp_path)
    log = _started(programs["calico-typha"], [], env)
    ours = {k[len("TYPHA_") :].lower() for k in env if k.startswith("TYPHA_")}
    assert ours - flags.parsed_parameters(log) == set(), log[-2000:]
    assert flags.rejected_values(log) == []
    plain = {k for k in env if not k.startswith("TYPHA_")}
    assert plain <= flags.TYPHA_PLAIN_VARIABLES


def test_felix_parses_every_felix_variable_kubesalt_sets(cluster, programs, tmp_path):
    ctx = kubesalt_core.component_context.Context(
        cluster, "worker-1", kubesalt_core.pki.Layout.of(cluster)
    )
    env = _existing_files(kubesalt_core.node_config.calico_node_environment(ctx), tmp_path)
    log = _started(programs["calico-node"], ["-felix"], env)
    ours = {k[len("FELIX_") :].lower() for k in env if k.startswith("FELIX_")}
    assert ours - flags.parsed_parameters(log) == set(), log[-2000:]
    assert "Ignoring unknown config param" not in log
    assert flags.rejected_values(log) == []
    plain = {k for k in env if not k.startswith("FELIX_")}
    assert plain <= flags.CALICO_NODE_PLAIN_VARIABLES


def test_the_calico_checks_catch_a_variable_the_program_ignores(programs, tmp_path):
    # (Typha reports what it parses at log level info, which kubesalt sets.)
    env = {"TYPHA_HEALTHPORTT": "1", "TYPHA_HEALTHPORT": "2", "TYPHA_LOGSEVERITYSCREEN": "info"}
    log = _started(programs["calico-typha"], [], env)
    assert "healthportt" not in flags.parsed_parameters(log)
    assert "healthport" in flags.parsed_parameters(log)


def test_the_toolchain_is_checked_against_its_pinned_sum(tmp_path):
    with pytest.raises(config.LabError, match=r"golang\.org/toolchain") as refused:
        toolchain.ensure(tmp_path, lambda _m: None, expected_sum="h1:" + "A" * 43 + "=")
    assert toolchain.installed(tmp_path) is None, refused.value


# --- the conformance suite and its images' programs -----------------------------------------


def test_the_conformance_suite_is_built_from_the_clusters_kubernetes(lab):
    tools = conformance.build_tools(lab, lambda _m: None, lab.versions())
    k8s = f"v{lab.versions()['kubernetes']}"
    assert _output([tools.e2e, "--version"]).strip() == k8s
    refs = e2e_images.manifest(tools.kubernetes_dir)
    agnhost_tag = e2e_images.split_reference(refs["Agnhost"])[2]
    assert _output([tools.programs["agnhost"], "--version"]).strip() == (
        f"app version {agnhost_tag}"
    )
    assert f"etcd Version: {e2e_images.etcd_version(refs)}" in _output(
        [tools.programs["etcd"], "--version"]
    )
    assert "wardle" in _output([tools.programs["sample-apiserver"], "--help"])
    # ginkgo at the version k8s.io/kubernetes requires (its go.mod).
    go_mod = (tools.kubernetes_dir / "go.mod").read_text()
    (ginkgo,) = [line.split()[1] for line in go_mod.splitlines() if "onsi/ginkgo/v2 " in line]
    assert _output([tools.ginkgo, "version"]).strip() == f"Ginkgo Version {ginkgo.lstrip('v')}"
    # The suite knows its conformance specs (upstream's own list: 462 in 1.37).
    listed = _output([tools.e2e, "--list-conformance-tests"], timeout=120)
    expected = 462 if k8s.startswith("v1.37.") else 1
    assert listed.count("testname:") >= expected, listed[-500:]


def test_containerds_own_loader_checks_its_config_before_it_replaces_the_old(
    cluster, programs, tmp_path
):
    """The check the containerd unit renders for config.toml (file.managed's check_cmd:
    the new file's path appended), run with the built containerd: it accepts what kubesalt
    writes and refuses a file that does not parse. Only config.toml is checked: the
    registries' hosts.toml files (with registry mirrors) are not containerd configs."""
    rendered = kubesalt_core.unit.render(cluster, "worker-1", "containerd")
    ((path, command),) = rendered.checks.items()
    assert path.endswith("/containerd/config.toml")
    command = command.replace(rendered.executable, str(programs["containerd"]), 1)
    good = tmp_path / "config.toml"
    good.write_text(rendered.files[path][0])
    bad = tmp_path / "bad.toml"
    bad.write_text(rendered.files[path][0].replace("]", "", 1))
    ran = subprocess.run(f"{command} {good}", shell=True, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    ran = subprocess.run(f"{command} {bad}", shell=True, capture_output=True, text=True)
    assert ran.returncode != 0 and "toml" in ran.stderr.lower(), ran.stderr
