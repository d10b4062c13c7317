"""Proof of the units and cluster objects without the kube-* and Calico binaries.

- every unit of every role, rendered from pillar, passes ``systemd-analyze verify`` with
  nothing on stderr (in a scratch root holding the host's system units and a stand-in
  executable where each binary goes: verify checks the unit, the artifact tests check the
  binary);
- every object kubesalt applies validates with ``kubernetes-validate`` for the pinned
  Kubernetes version;
- Calico's CRDs travel as a pinned artifact: served over local HTTP with their sha256,
  installed by kubesalt_artifact (a wrong sum installs nothing), and valid CRDs.
"""

import copy
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import kubesalt_core.components
import kubesalt_core.manifest
import kubesalt_core.pillar
import kubesalt_core.unit
from kubesalt_lab import artifacts
from kubesalt_lab.pillar import lab_config, lab_pillar
from tests.support.shared_data import calico_crds_or_skip

SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def _url_config():
    """The lab cluster as production would have it: every artifact from a release url."""
    config = lab_config()
    for name in ("kubernetes", "etcd", "calico_node", "calico_typha", "containerd", "bird"):
        config["artifacts"][name] = {
            "source": "url",
            "url": f"https://releases.example.invalid/{name}.tar.gz",
            "sha256": "0" * 64,
        }
    config["paths"] = kubesalt_core.pillar.resolve_paths(config["paths"])
    return config


def _lab_config():
    config = lab_config()
    config["paths"] = kubesalt_core.pillar.resolve_paths(config["paths"])
    return config


def _scratch_root(tmp_path, config, node_ids):
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    units = []
    for node_id in node_ids:
        for rendered in kubesalt_core.unit.node_units(config, node_id, include_etcd=True):
            unit = root / rendered.unit_path.lstrip("/")
            unit.parent.mkdir(parents=True, exist_ok=True)
            unit.write_text(rendered.unit_text)
            for line in rendered.unit_text.splitlines():
                if line.startswith("Exec"):
                    # Past systemd's prefixes (- ignore failure, + run as root, ...).
                    stand_in = root / line.split("=", 1)[1].split()[0].lstrip("-+!@:/")
                    stand_in.parent.mkdir(parents=True, exist_ok=True)
                    stand_in.write_text("#!/bin/sh\nexit 0\n")
                    stand_in.chmod(0o755)
            for path, (text, _) in rendered.files.items():
                target = root / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            units.append(rendered)
    return root, units


@pytest.mark.parametrize("make_config", [_url_config, _lab_config], ids=["url", "lab"])
def test_every_unit_passes_systemd_analyze_verify(tmp_path, make_config):
    nodes = ["master-1", "master-2", "worker-1", "router-1"]
    root, units = _scratch_root(tmp_path, make_config(), nodes)
    names = sorted({r.unit.unit_name for r in units})
    assert names == sorted(c.unit_name for c in kubesalt_core.components.COMPONENTS)
    for rendered in units:
        proc = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", rendered.unit_path],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (proc.returncode, proc.stderr) == (0, ""), rendered.unit_path


def test_systemd_analyze_would_catch_a_broken_unit(tmp_path):
    """The check above can fail: a missing executable and a typo are both reported."""
    root, (rendered, *_) = _scratch_root(tmp_path, _lab_config(), ["worker-1"])
    broken = rendered.unit_text.replace(
        f"ExecStart={rendered.executable}", "ExecStart=/usr/bin/no-such"
    )
    broken = broken.replace("Restart=on-failure", "Restart=on-failur")
    (root / rendered.unit_path.lstrip("/")).write_text(broken)
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", rendered.unit_path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "on-failur" in proc.stderr and "/usr/bin/no-such" in proc.stderr
    assert proc.returncode != 0


def _k8s_version():
    return str(lab_config()["versions"]["kubernetes"])


def test_every_cluster_object_validates_for_the_pinned_version():
    objects = kubesalt_core.manifest.cluster_objects(_lab_config())
    kinds = {kubesalt_core.manifest.describe(o) for o in objects}
    assert "ClusterRoleBinding/kubesalt:apiserver-kubelet-api-admin" in kinds
    assert "Service/kube-system/calico-typha" in kinds
    for obj in objects:
        kubernetes_validate.validate(obj, _k8s_version(), strict=True)


def test_the_kubelet_api_admin_binding_names_the_apiserver_kubelet_client_identity():
    import kubesalt_core.pki

    (binding,) = [
        o
        for o in kubesalt_core.manifest.cluster_objects(_lab_config())
        if o["metadata"]["name"] == "kubesalt:apiserver-kubelet-api-admin"
    ]
    (client,) = [s for s in kubesalt_core.pki.CATALOGUE if s.name == "apiserver-kubelet-client"]
    assert binding["roleRef"]["name"] == "system:kubelet-api-admin"
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": client.common_name}
    ]


def test_kubernetes_validate_would_catch_a_bad_object():
    (binding, *_) = kubesalt_core.manifest.cluster_objects(_lab_config())
    bad = copy.deepcopy(binding)
    bad["subjects"][0]["knd"] = bad["subjects"][0].pop("kind")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, _k8s_version(), strict=True)


# --- Calico's CRDs as a pinned artifact ---------------------------------------------------------


@pytest.fixture(scope="module")
def crds_release(tmp_path_factory):
    folder = calico_crds_or_skip()
    out = tmp_path_factory.mktemp("calico-release")
    # Shaped like a release's manifests/crds.yaml: the CRDs as one YAML stream.
    parts = [p.read_text() for p in sorted(folder.glob("crd.projectcalico.org_*.yaml"))]
    manifest = out / "crds.yaml"
    manifest.write_text("".join(p if p.startswith("---") else "---\n" + p for p in parts))
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    with artifacts.Served(out, "127.0.0.1") as served:
        yield {"url": served.url("crds.yaml"), "sha256": digest, "documents": len(parts)}


def _apply_crds(loaders, root, url, sha256):
    pillar = lab_pillar()
    pillar["paths"] = {"root": str(root)}
    pillar["artifacts"]["calico_crds"] = {"source": "url", "url": url, "sha256": sha256}
    high = {
        "kubesalt-artifact-calico-crds.yaml-installed": {
            "kubesalt_artifact": ["installed", {"name": "calico-crds.yaml"}],
            "__sls__": "test_units",
            "__env__": "base",
        }
    }
    ret = loaders.modules.state.high(high, pillar={"kubesalt": pillar}).raw
    (result,) = ret.values()
    return result


def test_calico_crds_arrive_as_a_checked_artifact_and_validate(loaders, crds_release, tmp_path):
    wrong = _apply_crds(loaders, tmp_path, crds_release["url"], "1" * 64)
    target = tmp_path / "etc" / "kubesalt" / "manifests" / "calico-crds.yaml"
    assert wrong["result"] is False and "sha256 mismatch" in wrong["comment"]
    assert not target.exists()

    done = _apply_crds(loaders, tmp_path, crds_release["url"], crds_release["sha256"])
    assert done["result"] is True and done["changes"]["installed"]["reason"] == "missing"
    assert oct(os.stat(target).st_mode & 0o777) == "0o644"
    again = _apply_crds(loaders, tmp_path, crds_release["url"], crds_release["sha256"])
    assert again["changes"] == {}

    documents = [d for d in yaml.safe_load_all(target.read_text()) if d]
    assert len(documents) == crds_release["documents"]
    for crd in documents:
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["spec"]["group"] == "crd.projectcalico.org"
        kubernetes_validate.validate(crd, _k8s_version(), strict=True)


def test_a_new_binary_restarts_only_the_units_that_run_it(loaders, tmp_path):
    """The compiled highstate: each unit watches its own binary's install and no other."""
    pillar = lab_pillar()
    pillar["paths"] = {"root": str(tmp_path)}
    for name in ("kubernetes", "calico_typha"):
        pillar["artifacts"][name] = {
            "source": "url",
            "url": f"http://127.0.0.1:9/{name}.tar.gz",
            "sha256": "0" * 64,
        }
    compiled = loaders.modules.state.show_sls("kubesalt.units", pillar={"kubesalt": pillar})
    assert isinstance(compiled, dict), compiled
    watched = {}
    for state_id, body in compiled.items():
        for item in body.get("service", []):
            if isinstance(item, dict) and "watch" in item:
                watched[state_id] = {
                    v for w in item["watch"] for k, v in w.items() if k == "kubesalt_artifact"
                }
    assert watched == {
        "kubesalt-unit-kube-apiserver-running": {"kubesalt-artifact-kube-apiserver-installed"},
        "kubesalt-unit-kube-scheduler-running": {"kubesalt-artifact-kube-scheduler-installed"},
        "kubesalt-unit-kube-controller-manager-running": {
            "kubesalt-artifact-kube-controller-manager-installed"
        },
        "kubesalt-unit-calico-typha-running": {"kubesalt-artifact-calico-typha-installed"},
    }
