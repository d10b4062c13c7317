"""kube-bench, the CIS Kubernetes benchmark's runner, on the lab's hosts.

Built from its Go module at a pinned version (``recipes.KUBE_BENCH``), its program and
checks are put where every host sees them (``/opt/kubesalt-lab/kube-bench``, bound read-only
from the lab's run directory) and run inside a master (targets master, etcd, controlplane,
policies) and a worker (node) with ``--benchmark cis-1.12``: kube-bench's own config maps
Kubernetes only up to 1.34, and without a benchmark it falls back to an old one. Its
benchmark's ``config.yaml`` gets kubesalt's paths (:func:`config_overlay`): which unit,
config and kubeconfig each component has, where etcd's data is; kube-bench otherwise looks
for kubeadm's static pod manifests.

    summary = kube_bench.run_all(lab, progress)   # {"master": [Report], "worker": [Report]}
"""

import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import kubesalt_core.control_plane_config
import kubesalt_core.pillar
import kubesalt_core.pki
from kubesalt_lab import build, containers, recipes, toolchain
from kubesalt_lab.config import LabError
from kubesalt_lab.pillar import lab_config

INSIDE = Path("/opt/kubesalt-lab/kube-bench")  # as the hosts see it
TARGETS = {
    "master": ("master", "etcd", "controlplane", "policies"),
    "worker": ("node",),
}

# What kube-bench v0.15.6 (cis-1.12) fails on the lab, each with why: the lab tests refuse
# any other FAIL, so a regression shows. README ("CIS benchmark") says the same.
KNOWN_FAILS = {
    "master": {},
    "worker": {
        "4.2.10": "kubesalt issues and renews the kubelet's certificates itself, from its own "
        "CA host (rotateCertificates off: the kubelet's own rotation would replace them "
        "through the CSR API)",
    },
}


def config_overlay(config):
    """kube-bench's benchmark config (merged over its own ``cfg/config.yaml``) for a cluster
    kubesalt runs: each component's systemd unit stands where kubeadm's pod manifest would
    (the flags are in its ExecStart), with its config file and kubeconfig."""
    paths = config["paths"]
    layout = kubesalt_core.pki.Layout.of(config)

    def unit(name):
        return f"{paths['systemd_dir']}/{name}.service"

    def files(conf, **more):
        found = {"confs": [conf], "defaultconf": conf}
        for key, value in more.items():
            found[key], found[f"default{key}"] = [value], value
        return found

    etcd = {
        **files(unit("etcd")),
        "datadirs": [paths["etcd_data_dir"]],
        "defaultdatadir": paths["etcd_data_dir"],
    }
    kubelet_config = f"{paths['kubelet_dir']}/config.yaml"
    return {
        "master": {
            "apiserver": files(unit("kube-apiserver")),
            "scheduler": files(unit("kube-scheduler"), kubeconfig=layout.kubeconfig("scheduler")),
            "controllermanager": files(
                unit("kube-controller-manager"),
                kubeconfig=layout.kubeconfig("controller-manager"),
            ),
            "etcd": etcd,
        },
        "etcd": {"etcd": etcd},
        "node": {
            "kubelet": {
                **files(
                    kubelet_config,
                    kubeconfig=layout.kubeconfig("kubelet"),
                    svc=unit("kubelet"),
                    cafile=layout.trusted_ca("kubernetes-ca"),
                ),
            },
            "proxy": files(
                f"{paths['kube_proxy_dir']}/config.yaml",
                kubeconfig=layout.kubeconfig("kube-proxy"),
                svc=unit("kube-proxy"),
            ),
        },
    }


def _lab_config():
    config = lab_config()
    config["paths"] = kubesalt_core.pillar.resolve_paths(config["paths"])
    return config


@dataclass(frozen=True)
class Report:
    """What kube-bench found on one node: its totals and the checks by state."""

    node: str
    passed: int
    failed: int
    warned: int
    info: int
    checks: dict = field(default_factory=dict)  # {"FAIL": [(id, text)], "WARN": [...]}


def parse(node, output):
    """A :class:`Report` from ``kube-bench --json`` output (one JSON document)."""
    try:
        document = json.loads(output)
    except ValueError as err:
        raise LabError(f"kube-bench on {node} printed no JSON: {output.strip()[-300:]}") from err
    totals = document.get("Totals") or {}
    checks = {}
    for control in document.get("Controls") or []:
        for group in control.get("tests") or []:
            for result in group.get("results") or []:
                state = result.get("status", "")
                checks.setdefault(state, []).append(
                    (result.get("test_number"), result.get("test_desc"))
                )
    return Report(
        node,
        int(totals.get("total_pass", 0)),
        int(totals.get("total_fail", 0)),
        int(totals.get("total_warn", 0)),
        int(totals.get("total_info", 0)),
        checks,
    )


def built(lab, progress):
    """kube-bench's packed build (``build.Built``), built first when not in the cache."""
    go = toolchain.ensure(lab.cache_dir, progress)
    (found,) = build.build_component(
        go, lab.cache_dir, recipes.KUBE_BENCH, recipes.KUBE_BENCH_VERSION, progress
    )
    return found


def install(lab, progress):
    """Build (or find built) kube-bench and put it with its checks under the lab's run
    directory, where every host sees it at INSIDE."""
    packed = built(lab, progress)
    target = lab.run_dir / "launch" / "kube-bench"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(packed.path) as tar:
        for member in tar.getmembers():
            if member.isfile():
                path = target / member.name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tar.extractfile(member).read())
                path.chmod(0o755 if member.name == "kube-bench" else 0o644)
    overlay = target / "cfg" / recipes.KUBE_BENCH_BENCHMARK / "config.yaml"
    overlay.write_text(yaml.safe_dump(config_overlay(_lab_config()), sort_keys=True))
    return target


def run(lab, node, targets):
    """kube-bench inside ``node`` for ``targets``: a :class:`Report`."""
    argv = [
        str(INSIDE / "kube-bench"), "run", "--config-dir", str(INSIDE / "cfg"),
        "--benchmark", recipes.KUBE_BENCH_BENCHMARK, "--targets", ",".join(targets), "--json",
    ]  # fmt: skip
    proc = containers.inside(lab, node, argv, check=False, timeout=300)
    return parse(node.id, proc.stdout)


def run_all(lab, progress):
    """kube-bench on every master and every worker: ``{kind: [Report, ...]}``."""
    install(lab, progress)
    reports = {}
    for kind, targets in TARGETS.items():
        for node in (n for n in lab.ordered_nodes() if kind in n.roles):
            progress(f"kube-bench: {node.id} ({', '.join(targets)})")
            reports.setdefault(kind, []).append(run(lab, node, targets))
    return reports
