"""The security settings as data: the encryption key set through a rotation, the sealing
that carries it, the admission plugins and their configuration, the TLS policy of every
server, and what the rendered units, configs and modes say."""

import copy

import pytest
import yaml
from cryptography.exceptions import InvalidTag

import kubesalt_core.admission
import kubesalt_core.component_context
import kubesalt_core.components
import kubesalt_core.encryption as enc
import kubesalt_core.node_config
import kubesalt_core.pillar
import kubesalt_core.pki
import kubesalt_core.tls_policy
import kubesalt_core.unit
from kubesalt_lab.pillar import lab_config


@pytest.fixture
def config():
    config = copy.deepcopy(lab_config())
    config["paths"] = kubesalt_core.pillar.resolve_paths(config["paths"])
    return config


def _flags(rendered):
    return dict(w[2:].split("=", 1) for w in rendered.argv if w.startswith("--"))


# --- the key set -------------------------------------------------------------------------


def test_a_rotation_stages_promotes_and_retires_in_that_order():
    keys = enc.first_set("k1")
    assert enc.names(keys) == ["k1"] and keys[0]["state"] == "write"

    keys, staged = enc.stage(keys, enc.new_key("k2"))
    assert staged["name"] == "k2"
    # The old key still writes; the new one is read with, after it.
    assert [(k["name"], k["state"]) for k in enc.ordered(keys)] == [
        ("k1", "write"),
        ("k2", "staged"),
    ]

    keys, promoted = enc.promote(keys)
    assert promoted == "k2"
    assert [(k["name"], k["state"]) for k in enc.ordered(keys)] == [
        ("k2", "write"),
        ("k1", "old"),
    ]

    keys, removed = enc.retire(keys)
    assert removed == ["k1"] and enc.names(keys) == ["k2"]


def test_a_stopped_rotation_keeps_its_staged_key_and_steps_repeat_harmlessly():
    keys, _ = enc.stage(enc.first_set("k1"), enc.new_key("k2"))
    again, kept = enc.stage(keys, enc.new_key("k3"))
    assert kept["name"] == "k2" and again == keys
    unchanged, none = enc.promote([{"name": "k1", "secret": "x", "state": "write"}])
    assert none is None and unchanged == [{"name": "k1", "secret": "x", "state": "write"}]
    assert enc.retire(unchanged) == (unchanged, [])


def test_keys_are_32_random_bytes_each_time():
    a, b = enc.new_key("a"), enc.new_key("b")
    assert enc.key_problem(a["secret"]) is None and a["secret"] != b["secret"]
    assert enc.key_problem("c2hvcnQ=") == "is 5 bytes once decoded; expected 32"
    assert enc.key_problem("not base64!") == "is not base64"
    assert enc.key_problem(32) == "expected base64 of 32 random bytes, got int"


def test_the_configuration_writes_with_the_chosen_provider_and_reads_everything_else():
    keys = enc.promote(enc.stage(enc.first_set("k1"), enc.new_key("k2"))[0])[0]
    document = enc.configuration("aescbc", keys)
    providers = document["resources"][0]["providers"]
    assert document["resources"][0]["resources"] == ["secrets"]
    assert [next(iter(p)) for p in providers] == ["aescbc", "secretbox", "identity"]
    assert [k["name"] for k in providers[0]["aescbc"]["keys"]] == ["k2", "k1"]
    assert enc.configured(yaml.safe_load(yaml.safe_dump(document))) == ("aescbc", ["k2", "k1"])

    plain = enc.configuration("identity", keys)["resources"][0]["providers"]
    assert [next(iter(p)) for p in plain] == ["identity", "aescbc", "secretbox"]
    assert enc.configured({"kind": "something else"}) == (None, [])


def test_a_raw_etcd_value_tells_the_key_that_wrote_it():
    assert enc.stored_with(b"k8s:enc:aescbc:v1:key-1:\x00\x01binary") == "aescbc:key-1"
    assert enc.stored_with(b"k8s:enc:secretbox:v1:key-2:\xff") == "secretbox:key-2"
    assert enc.stored_with(b"k8s\x00\n\x0c\n\x02v1\x12\x06Secret") == "plain"


def test_the_sealed_answer_opens_only_with_the_requesting_key():
    private, public = enc.request_key()
    keys = enc.first_set("first-key")
    sealed = enc.seal({"keys": keys}, public)
    # Neither the name nor the secret shows ('-' is not in base64's alphabet).
    assert "first-key" not in str(sealed) and keys[0]["secret"] not in str(sealed)
    assert enc.unseal(sealed, private)["keys"][0]["name"] == "first-key"
    other, _ = enc.request_key()
    with pytest.raises(InvalidTag):
        enc.unseal(sealed, other)
    with pytest.raises(ValueError, match="X25519"):
        enc.seal({}, "bm90IGEga2V5")


# --- admission ---------------------------------------------------------------------------


def test_admission_flags_and_configuration_follow_the_switches(config):
    rendered = kubesalt_core.unit.render(config, "master-1", "kube-apiserver")
    flags = _flags(rendered)
    assert flags["enable-admission-plugins"] == (
        "DenyServiceExternalIPs,EventRateLimit,NodeRestriction,PodSecurity"
    )
    assert "disable-admission-plugins" not in flags
    text, mode = rendered.files[flags["admission-control-config-file"]]
    assert mode == 0o600
    plugins = {p["name"]: p["configuration"] for p in yaml.safe_load(text)["plugins"]}
    assert plugins["PodSecurity"]["defaults"] == {
        "enforce": "baseline",
        "enforce-version": "latest",
        "audit": "restricted",
        "audit-version": "latest",
        "warn": "restricted",
        "warn-version": "latest",
    }
    assert plugins["PodSecurity"]["exemptions"]["namespaces"] == ["kube-system"]
    assert plugins["EventRateLimit"]["kind"] == "Configuration"

    config["apiserver"]["admission"]["plugins"].update(PodSecurity=False, EventRateLimit=False)
    flags = _flags(kubesalt_core.unit.render(config, "master-1", "kube-apiserver"))
    # On in Kubernetes by itself: turned off explicitly.
    assert flags["disable-admission-plugins"] == "PodSecurity"
    assert "admission-control-config-file" not in flags
    assert kubesalt_core.admission.configuration(config) is None


# --- TLS ---------------------------------------------------------------------------------


def test_every_go_server_gets_the_same_tls_policy(config):
    suites = ",".join(config["tls"]["cipher_suites"])
    for name in ("kube-apiserver", "kube-scheduler", "kube-controller-manager"):
        flags = _flags(kubesalt_core.unit.render(config, "master-1", name))
        assert flags["tls-min-version"] == "VersionTLS12"
        assert flags["tls-cipher-suites"] == suites
    etcd = kubesalt_core.unit.render(config, "master-1", "etcd")
    (env_text, env_mode), *_ = etcd.files.values()
    assert env_mode == 0o600
    assert f"ETCD_CIPHER_SUITES={suites}" in env_text and "ETCD_TLS_MIN_VERSION=TLS1.2" in env_text
    kubelet = kubesalt_core.unit.render(config, "worker-1", "kubelet")
    (kubelet_text, kubelet_mode), *_ = kubelet.files.values()
    document = yaml.safe_load(kubelet_text)
    assert kubelet_mode == 0o600
    assert document["tlsCipherSuites"] == config["tls"]["cipher_suites"]
    assert document["tlsMinVersion"] == "VersionTLS12"


def test_tls13_alone_chooses_no_suites_and_etcd_34_gets_no_minimum(config):
    config["tls"]["min_version"] = "VersionTLS13"
    assert kubesalt_core.tls_policy.kubernetes_flags(config) == [
        ("tls-min-version", "VersionTLS13")
    ]
    assert kubesalt_core.tls_policy.etcd_environment(config, "3.6.5") == {
        "ETCD_TLS_MIN_VERSION": "TLS1.3"
    }
    config["tls"]["min_version"] = "VersionTLS12"
    assert "ETCD_TLS_MIN_VERSION" not in kubesalt_core.tls_policy.etcd_environment(config, "3.4.23")


# --- the rest the benchmark asks for -----------------------------------------------------


def test_scheduler_and_controller_manager_listen_and_are_probed_on_the_loopback(config):
    for name, port in (("kube-scheduler", 10259), ("kube-controller-manager", 10257)):
        assert _flags(kubesalt_core.unit.render(config, "master-1", name))["bind-address"] == (
            "127.0.0.1"
        )
        probe = kubesalt_core.components.probe(config, "master-1", name)
        assert probe.url.startswith(f"https://127.0.0.1:{port}/")


def test_the_apiserver_encrypts_and_reloads_its_encryption_config_by_itself(config):
    rendered = kubesalt_core.unit.render(config, "master-1", "kube-apiserver")
    flags = _flags(rendered)
    path = flags["encryption-provider-config"]
    assert path == "/etc/kubernetes/encryption-config.yaml"
    # Not one of the unit's own files: no key in pillar or in the rendered state.
    assert path not in rendered.files
    # Rewritten (a rotation step), it is read again without a restart.
    assert flags["encryption-provider-config-automatic-reload"] == "true"
    assert path not in rendered.credentials
    assert flags["service-account-extend-token-expiration"] == "false"
    assert flags["audit-policy-file"] in rendered.files
    assert rendered.files[flags["audit-policy-file"]][1] == 0o600


def test_kubelet_settings_and_the_sysctls_protect_kernel_defaults_needs(config):
    ctx = kubesalt_core.component_context.Context(
        config, "worker-1", kubesalt_core.pki.Layout.of(config)
    )
    document = kubesalt_core.node_config.kubelet_configuration(ctx)
    assert document["seccompDefault"] is True
    assert document["podPidsLimit"] == 4096
    assert document["readOnlyPort"] == 0
    (sysctls, _), *_ = kubesalt_core.node_config.kernel_files(ctx).values()
    assert document["protectKernelDefaults"] is True
    for key, value in kubesalt_core.node_config.KUBELET_SYSCTLS.items():
        assert f"{key} = {value}" in sysctls
    # Off: the kubelet leaves the kernel alone, and kubesalt writes none of them.
    config["kubelet"]["protect_kernel_defaults"] = False
    document = kubesalt_core.node_config.kubelet_configuration(ctx)
    (sysctls, _), *_ = kubesalt_core.node_config.kernel_files(ctx).values()
    assert document["protectKernelDefaults"] is False
    assert "kernel.panic" not in sysctls


def test_an_apiserver_loaded_the_config_only_when_its_metric_carries_the_files_hash():
    metrics = (
        "# TYPE apiserver_encryption_config_controller_last_config_info gauge\n"
        'apiserver_encryption_config_controller_last_config_info{apiserver_id_hash="sha256:ab",'
        'hash="sha256:0123"} 1\n'
        'apiserver_other_info{hash="sha256:4567"} 1\n'
    )
    assert enc.loaded_hash_in(metrics, "sha256:0123")
    assert not enc.loaded_hash_in(metrics, "sha256:4567")
    assert not enc.loaded_hash_in("", "sha256:0123")
