"""The units as data: command lines, config files and environments for each role, and every
flag and config field checked against the lists kept for the pinned versions."""

import copy

import pytest

import kubesalt_core.artifact
import kubesalt_core.component_context
import kubesalt_core.components
import kubesalt_core.control_plane_config
import kubesalt_core.node_config
import kubesalt_core.pillar
import kubesalt_core.pki
import kubesalt_core.unit
from kubesalt_lab.pillar import lab_config


@pytest.fixture(scope="module")
def config():
    config = lab_config()
    config["paths"] = kubesalt_core.pillar.resolve_paths(config["paths"])
    return config


def _ctx(config, node_id):
    return kubesalt_core.component_context.Context(
        config, node_id, kubesalt_core.pki.Layout.of(config)
    )


def _flags(rendered):
    return dict(w[2:].split("=", 1) for w in rendered.argv if w.startswith("--"))


def test_one_record_per_component_gives_the_managed_units_and_their_states():
    assert kubesalt_core.components.managed_units(["master"]) == {
        "etcd.service": "etcd",
        "kube-apiserver.service": "kubernetes",
        "kube-scheduler.service": "kubernetes",
        "kube-controller-manager.service": "kubernetes",
        "calico-typha.service": "calico_typha",
    }
    assert set(kubesalt_core.components.managed_units(["router"])) == {"bird.service"}
    assert kubesalt_core.components.state_of("etcd.service") == "kubesalt.etcd"
    assert kubesalt_core.components.state_of("kube-apiserver.service") == "kubesalt.units"
    with pytest.raises(KeyError, match=r"'sshd\.service' is not a kubesalt unit"):
        kubesalt_core.components.state_of("sshd.service")


def test_every_component_runs_a_binary_of_its_artifact():
    for component in kubesalt_core.components.COMPONENTS:
        binary = kubesalt_core.artifact.binary(component.binary)
        assert binary.artifact == component.artifact, component.name
        assert component.role in binary.roles, component.name


def test_health_probes_ask_each_component_itself(config):
    apiserver = kubesalt_core.components.probe(config, "master-2", "kube-apiserver")
    assert apiserver.url == "https://198.18.0.12:6443/readyz"
    assert apiserver.ca == "/etc/kubernetes/pki/kubernetes-ca.crt"
    assert apiserver.cert == "/etc/kubernetes/pki/admin.crt"
    typha = kubesalt_core.components.probe(config, "master-2", "calico-typha")
    assert typha.url == "http://127.0.0.1:9098/readiness"
    env = kubesalt_core.control_plane_config.typha_environment(_ctx(config, "master-2"))
    assert (env["TYPHA_HEALTHHOST"], env["TYPHA_HEALTHPORT"]) == ("127.0.0.1", "9098")
    assert kubesalt_core.components.probe(config, "master-2", "etcd").url == (
        "https://198.18.0.12:2379/health"
    )
    assert kubesalt_core.components.probe(config, "router-1", "bird") is None


def test_apiserver_command_line(config):
    flags = _flags(kubesalt_core.unit.render(config, "master-2", "kube-apiserver"))
    pki = "/etc/kubernetes/pki"
    assert flags["etcd-servers"] == "https://198.18.0.12:2379"  # its own member only
    assert flags["etcd-certfile"] == f"{pki}/apiserver-etcd-client.crt"
    assert flags["etcd-cafile"] == f"{pki}/etcd-ca.crt"
    assert flags["kubelet-client-certificate"] == f"{pki}/apiserver-kubelet-client.crt"
    assert flags["kubelet-certificate-authority"] == f"{pki}/kubernetes-ca.crt"
    assert flags["authorization-mode"] == "Node,RBAC"
    assert "NodeRestriction" in flags["enable-admission-plugins"].split(",")
    assert flags["service-account-key-file"] == f"{pki}/service-accounts.pub"
    assert flags["service-account-signing-key-file"] == f"{pki}/service-account.key"
    assert flags["requestheader-client-ca-file"] == f"{pki}/front-proxy-ca.crt"
    assert flags["proxy-client-cert-file"] == f"{pki}/front-proxy-client.crt"
    assert flags["audit-log-path"] == "/var/log/kubernetes/audit.log"
    assert flags["advertise-address"] == "198.18.0.12"


def test_every_certificate_a_unit_names_is_in_the_catalogue_for_its_role():
    for unit in kubesalt_core.components.COMPONENTS:
        held = {s.name for s in kubesalt_core.pki.CATALOGUE if unit.role in s.roles}
        assert set(unit.certs) <= held, unit.name
        if unit.kubeconfig:
            assert unit.kubeconfig in {
                k.name for k in kubesalt_core.pki.node_kubeconfigs([unit.role])
            }


def test_the_cluster_signing_pair_stays_on_the_ca_host(config):
    on_ca_host = _flags(kubesalt_core.unit.render(config, "master-1", "kube-controller-manager"))
    elsewhere = _flags(kubesalt_core.unit.render(config, "master-2", "kube-controller-manager"))
    assert on_ca_host["cluster-signing-key-file"] == "/etc/kubesalt/ca/kubernetes-ca.key"
    assert "cluster-signing-key-file" not in elsewhere
    assert elsewhere["controllers"] == "*,-csrsigning"
    for flags in (on_ca_host, elsewhere):
        assert flags["leader-elect"] == "true"
        assert flags["kubeconfig"] == "/etc/kubernetes/controller-manager.conf"
        assert flags["allocate-node-cidrs"] == "false"


def test_kubelet_configuration_owns_nothing_kubesalt_owns(config):
    document = kubesalt_core.node_config.kubelet_configuration(_ctx(config, "worker-1"))
    assert document["cgroupDriver"] == "systemd"
    assert document["tlsCertFile"] == "/etc/kubernetes/pki/kubelet-server.crt"
    # kubesalt issues and renews the kubelet's certificates: the kubelet does not rotate them.
    assert document["rotateCertificates"] is False and document["serverTLSBootstrap"] is False
    assert document["authentication"]["webhook"]["enabled"] is True
    assert document["authentication"]["anonymous"]["enabled"] is False
    assert document["authorization"]["mode"] == "Webhook"
    assert document["containerRuntimeEndpoint"] == "unix:///run/containerd/containerd.sock"
    assert document["clusterDNS"] == ["198.18.16.10"]


def test_kube_proxy_follows_its_mode_and_the_pod_range(config):
    ipvs = copy.deepcopy(config)
    ipvs["kube_proxy"] = {"mode": "ipvs", "conntrack_max_per_core": 32768}
    document = kubesalt_core.node_config.kube_proxy_configuration(_ctx(ipvs, "worker-2"))
    assert (document["mode"], document["ipvs"]["strictARP"]) == ("ipvs", True)
    assert document["clusterCIDR"] == "198.19.0.0/16"
    assert document["hostnameOverride"] == "worker-2"
    assert document["conntrack"] == {"maxPerCore": 32768}
    files = kubesalt_core.node_config.kernel_files(_ctx(ipvs, "worker-2"))
    sysctls, modules = (files[p][0] for p in sorted(files, key=lambda p: "modules" in p))
    assert {"ip_vs", "ip_vs_rr", "nf_conntrack"} <= set(modules.split())
    assert "net.ipv4.ip_forward = 1" in sysctls
    # The lab's kernel has no IPVS: nftables, no modules to load, the conntrack table
    # left as the machine has it.
    lab = kubesalt_core.node_config.kube_proxy_configuration(_ctx(config, "worker-2"))
    assert (lab["mode"], "ipvs" in lab, lab["conntrack"]) == ("nftables", False, {"maxPerCore": 0})
    assert list(kubesalt_core.node_config.kernel_files(_ctx(config, "worker-2"))) == [
        "/etc/sysctl.d/90-kubesalt.conf"
    ]
    felix = kubesalt_core.node_config.calico_node_environment(_ctx(config, "worker-2"))
    assert felix["FELIX_NFTABLESMODE"] == "Enabled"  # felix's rules beside kube-proxy's


def test_containerd_config_schema_follows_its_major_version(config):
    new = kubesalt_core.node_config.containerd_config(_ctx(config, "worker-1"))
    older = copy.deepcopy(config)
    older["versions"]["containerd"] = "1.6.20"  # Debian bookworm's package
    old = kubesalt_core.node_config.containerd_config(_ctx(older, "worker-1"))
    assert "version = 2" in old and '"io.containerd.grpc.v1.cri"' in old
    assert "version = 3" in new and '"io.containerd.cri.v1.runtime"' in new
    for text in (old, new):
        assert "SystemdCgroup = true" in text


def _tls_rule(env, prefix, files, names):
    """Calico's rule: any TLS setting means all three files plus a CN or URI SAN."""
    given = {k for k in env if k.startswith(prefix)}
    return {prefix + f for f in files} <= given and bool({prefix + n for n in names} & given)


def test_felix_and_typha_trust_each_other_over_mutual_tls(config):
    felix = kubesalt_core.node_config.calico_node_environment(_ctx(config, "worker-1"))
    typha = kubesalt_core.control_plane_config.typha_environment(_ctx(config, "master-1"))
    assert _tls_rule(felix, "FELIX_TYPHA", ("CAFILE", "CERTFILE", "KEYFILE"), ("CN", "URISAN"))
    assert _tls_rule(typha, "TYPHA_", ("CAFILE", "SERVERCERTFILE", "SERVERKEYFILE"), ("CLIENTCN",))
    # Each side expects the CN the other's certificate really has.
    cns = {s.name: s.common_name for s in kubesalt_core.pki.CATALOGUE}
    assert felix["FELIX_TYPHACN"] == cns["calico-typha"]
    assert typha["TYPHA_CLIENTCN"] == cns["calico-felix"]
    assert felix["FELIX_TYPHACERTFILE"].endswith("/calico-felix.crt")
    assert typha["TYPHA_SERVERCERTFILE"].endswith("/calico-typha.crt")


def test_the_cni_plugin_logs_to_stderr_and_writes_no_log_file(config):
    # Calico's plugin opens a log file for any non-empty log_file_path (cni-plugin's
    # ConfigureLogging): "none" made it write a file called "none" in containerd's cwd.
    conflist = kubesalt_core.node_config.cni_configuration(_ctx(config, "worker-1"))
    (calico,) = [p for p in conflist["plugins"] if p["type"] == "calico"]
    assert calico.get("log_file_path", "") == ""


# The Debian packages that ship what kube-proxy and felix exec in each mode: IPVS mode still
# writes iptables rules beside its virtual servers, and felix's iptables dataplane (every
# mode but nftables) runs iptables-save/-restore.
MODE_PROGRAMS = {
    "ipvs": {"iptables", "ipset", "ipvsadm", "conntrack"},
    "nftables": {"nftables", "conntrack"},
    "iptables": {"iptables", "ipset", "conntrack"},
}


@pytest.mark.parametrize("mode", sorted(MODE_PROGRAMS))
def test_each_kube_proxy_mode_installs_the_programs_kube_proxy_and_felix_run(config, mode):
    config = copy.deepcopy(config)
    config["kube_proxy"]["mode"] = mode
    packages = set(
        kubesalt_core.node_config.MODE_PACKAGES[kubesalt_core.node_config.kube_proxy_mode(config)]
    )
    assert MODE_PROGRAMS[mode] <= packages
    felix = kubesalt_core.node_config.calico_node_environment(_ctx(config, "worker-1"))
    assert felix["FELIX_NFTABLESMODE"] == ("Enabled" if mode == "nftables" else "Disabled")


# --- the unit file ------------------------------------------------------------------------------


def test_unit_files_log_to_journald_and_restart_with_a_limit(config):
    for node_id in ("master-1", "worker-1"):
        for rendered in kubesalt_core.unit.node_units(config, node_id):
            text = rendered.unit_text
            for line in (
                "Restart=on-failure",
                "StandardOutput=journal",
                "StandardError=journal",
                "StartLimitBurst=5",
                "StartLimitIntervalSec=120",
                "WantedBy=multi-user.target",
            ):
                assert line in text.splitlines(), (rendered.unit.name, line)
            assert text.count("ExecStart=") == 1
            assert f"ExecStart={rendered.executable}" in text


def test_executables_follow_the_artifact_source(config):
    config = copy.deepcopy(config)
    config["artifacts"]["containerd"] = {"source": "package", "package": "containerd"}
    config["artifacts"].pop("kubernetes", None)
    config["artifacts"]["calico_node"] = {"source": "path", "path": "/opt/calico/calico-node"}
    worker = {r.unit.name: r.executable for r in kubesalt_core.unit.node_units(config, "worker-1")}
    assert worker["containerd"] == "/usr/bin/containerd"  # Debian's package
    assert worker["calico-bird"] == "/usr/sbin/bird"  # the lab pillar's bird2 package
    assert worker["kubelet"] == "/usr/local/bin/kubelet"  # not in pillar: where it would go
    assert worker["calico-felix"] == "/opt/calico/calico-node"
    assert worker["kube-proxy"] == "/usr/local/bin/kube-proxy"


def test_a_percent_sign_cannot_become_a_systemd_specifier():
    unit = kubesalt_core.components.spec("kube-scheduler")
    text = kubesalt_core.unit.unit_text(unit, "/bin/x", ["--name=50%"])
    assert "--name=50%%" in text


def test_the_readme_lists_every_unit_with_its_config_files(config):
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Units", 1)[1].split("\n## ", 1)[0]
    for node_id in ("master-2", "worker-1", "router-1"):
        for rendered in kubesalt_core.unit.node_units(config, node_id):
            assert f"| `{rendered.unit.name}` |" in section, rendered.unit.name
            for path in rendered.files:
                assert path in section, (rendered.unit.name, path)
            for port in rendered.unit.ports:
                where = port.split()[1] if port.startswith("unix ") else port.split("/")[0]
                assert where in section, (rendered.unit.name, port)


def test_a_unit_holds_stale_credentials_only_when_they_were_written_after_it_started(config):
    rendered = kubesalt_core.unit.render(config, "master-1", "calico-typha")
    pki = config["paths"]["pki_dir"]
    assert rendered.credentials == (
        f"{pki}/calico-typha.crt",
        f"{pki}/calico-typha-client.crt",
        "/etc/kubernetes/calico-typha.conf",
    )
    written = {path: 1000.0 for path in rendered.credentials}
    assert kubesalt_core.unit.stale_credentials(1000.5, written) == []
    renewed = {**written, f"{pki}/calico-typha.crt": 2000.0}
    assert kubesalt_core.unit.stale_credentials(1000.5, renewed) == [f"{pki}/calico-typha.crt"]
    # Not running: it reads whatever is there when it starts.
    assert kubesalt_core.unit.stale_credentials(None, renewed) == []
    # etcd reloads its certificates on each handshake; BIRD has none.
    assert kubesalt_core.unit.render(config, "router-1", "bird").credentials == ()
