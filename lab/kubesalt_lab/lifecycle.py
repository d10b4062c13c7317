"""up, apply, status, down: what the CLI commands do."""

import os
import shutil
import time
from pathlib import Path

from kubesalt_lab import (
    artifacts,
    build,
    conformance,
    containers,
    converge,
    e2e_images,
    images,
    ingress_controller,
    kube_bench,
    master,
    net,
    pillar,
    recipes,
    registry,
    rootfs,
)
from kubesalt_lab.config import LabError
from kubesalt_lab.system import alive, cmdline, run, stop_pids, wait_until

REQUIRED_COMMANDS = ("systemd-nspawn", "debootstrap", "ip", "nsenter", "systemctl")


def check_prerequisites(lab):
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, systemd-nspawn)")
    missing = [c for c in REQUIRED_COMMANDS if not shutil.which(c)]
    if missing:
        raise LabError(f"missing commands: {', '.join(missing)} (run `make setup`)")
    if not (lab.venv / "bin" / "salt-master").exists():
        raise LabError(f"no salt in {lab.venv} (run `make setup`)")


def pinned_versions(lab):
    """The versions the lab's pillar pins (its own copy once `up` wrote one)."""
    return master.lab_pillar(lab).versions() if lab.master_dir.exists() else lab.versions()


def build_components(lab, progress, names=None):
    """Build (or find built) every component at the versions the lab's pillar pins; writes
    ``SHA256SUMS`` beside the archives. Returns ({component: [Built]}, table rows)."""
    started = time.monotonic()
    results, rows = build.build_all(lab.cache_dir, pinned_versions(lab), progress, names)
    if not names:
        build.write_sums(lab.cache_dir, [b for built in results.values() for b in built])
    progress(f"build: {len(results)} components ready ({time.monotonic() - started:.1f}s)")
    return results, rows


def prepare(lab, progress):
    """Make ahead what `up` and `conformance` take from the cache: every component built
    (and the previous minors of Kubernetes and etcd, for the upgrades), the hosts' rootfs
    (unless hosts run from the one there), the ingress controller and its image's layer,
    kube-bench, the conformance suite, the programs of its images and their shared base
    layer. Nothing starts and nothing outside the cache changes. Returns the build's table
    rows."""
    check_prerequisites(lab)
    started = time.monotonic()
    _components, rows = build_components(lab, progress)
    # The Kubernetes and the etcd the upgrade tests start from or pass through.
    previous = {
        **pinned_versions(lab),
        "kubernetes": pillar.KUBERNETES_PREVIOUS_MINOR,
        "etcd": pillar.ETCD_PREVIOUS_MINOR,
    }
    build.build_all(lab.cache_dir, previous, progress, names=["kubernetes", "etcd"])
    running = [n.id for n in lab.nodes if containers.nspawn_pid(lab, n)]
    if running:
        progress(f"rootfs: left as it is ({', '.join(running)} run from it)")
    else:
        rootfs.ensure(lab.rootfs, progress)
    built = build_ingress(lab, progress)
    if built:
        ingress_controller.base_layer(lab.cache_dir, progress)
    kube_bench.built(lab, progress)
    tools = conformance.build_tools(lab, progress, pinned_versions(lab))
    e2e_images.base_layer(lab.cache_dir, tools.programs["busybox"], progress)
    progress(f"prepare: everything in the cache ({time.monotonic() - started:.1f}s)")
    return rows


def build_ingress(lab, progress):
    """The ingress controller's packed build (``build.Built``) when the lab makes its image
    (pillar runs NGINX's controller from its default image) and its source archive is
    here; else None, after saying why."""
    given = lab.cluster.get("ingress") or {}
    if (given.get("controller") or "nginx") != "nginx" or given.get("image"):
        progress("ingress: pillar names its own controller image; the lab makes none")
        return None
    version = str(pinned_versions(lab)[ingress_controller.NAME])
    archive = ingress_controller.find_archive(lab.cache_dir, version)
    if archive is None:
        progress(ingress_controller.missing_message(lab.cache_dir, version))
        return None
    return ingress_controller.build_controller(lab.cache_dir, version, archive, progress)


def publish_images(lab, components, progress, ingress=None):
    """Make the cluster's images from the lab's builds (and the ingress controller's, when
    ``ingress`` is its build) and push them to the lab's registry (started here); returns
    the pillar settings that point containerd at it."""
    registry.start(lab)
    base = registry.url(lab)
    made = images.for_lab(
        lab.cache_dir, master.lab_pillar(lab).versions(), components, lab.run_dir / "images"
    )
    if ingress:
        layer = ingress_controller.base_layer(lab.cache_dir, progress)
        made.append(ingress_controller.image(ingress.path, ingress.version, layer))
    for image in made:
        digest, pushed = registry.push(base, image, layer_cache=lab.layer_cache)
        progress(
            f"image {image.reference}: {'pushed' if pushed else 'in the registry'} ({digest[:19]})"
        )
    mirrors = sorted({image.registry for image in made})
    return {"containerd:registry_mirrors": {name: [base] for name in mirrors}}


def set_pillar(lab, settings, progress):
    """``kubesalt-lab pillar``: replace pillar values for every node. A changed version of a
    component the lab builds is built first (a version that cannot be built stops here,
    before any host sees it) and its artifacts point at the new files. Returns {minion:
    refreshed}."""
    served = master.lab_pillar(lab)
    before, after = served.versions(), served.versions(overrides=settings)
    changed = [r.name for r in recipes.RECIPES if str(before[r.name]) != str(after[r.name])]
    built = None
    if changed:
        results, _rows = build.build_all(lab.cache_dir, after, progress, names=changed)
        files = [b for found in results.values() for b in found]
        built = {**served.built, **pillar.built_settings(files, artifacts.server_url(lab))}
    served.write(built=built, overrides=settings)
    return master.refresh_pillar(lab)


# The kubelet's default hard eviction threshold for its image filesystem. In the lab every
# node's kubelet sees this machine's filesystem: below it the workers are tainted
# node.kubernetes.io/disk-pressure and no pod schedules.
KUBELET_IMAGEFS_EVICTION = 0.15


def disk_warning(total_bytes, free_bytes, where):
    """A warning when the filesystem at ``where`` is near the kubelets' disk-pressure
    threshold (None otherwise)."""
    free = free_bytes / total_bytes if total_bytes else 0.0
    if free >= KUBELET_IMAGEFS_EVICTION + 0.05:
        return None
    return (
        f"warning: {where} has {free:.0%} of its filesystem free; the workers' kubelets see "
        f"this filesystem and below {KUBELET_IMAGEFS_EVICTION:.0%} free they report "
        "DiskPressure and no pod schedules"
    )


def up(lab, progress):
    """Bring the lab up; every step is idempotent, so a second `up` only checks."""
    started = time.monotonic()
    check_prerequisites(lab)
    lab.cache_dir.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(lab.cache_dir)
    warning = disk_warning(usage.total, usage.free, lab.cache_dir)
    if warning:
        progress(warning)
    running = [n.id for n in lab.nodes if containers.nspawn_pid(lab, n)]
    if running and not rootfs.is_current(lab.rootfs):
        raise LabError(
            f"the rootfs recipe changed while {', '.join(running)} run from the old one; "
            "run `kubesalt-lab down` first"
        )
    # The components first: a version that cannot be built stops `up` before any host.
    components, _rows = build_components(lab, progress)
    ingress = build_ingress(lab, progress)
    built = rootfs.ensure(lab.rootfs, progress)
    progress(f"network: bridge {net.BRIDGE} {lab.bridge_ip}/{lab.prefixlen}")
    net.ensure_bridge(lab)
    for node in lab.nodes:
        net.ensure_node(lab, node)
    progress(f"network: {len(lab.nodes)} namespaces, one per node")
    artifacts.start_server(lab)
    progress(f"artifacts: served from {artifacts.server_url(lab)}")
    mirrors = publish_images(lab, components, progress, ingress)
    files = [b for found in components.values() for b in found]
    master.lab_pillar(lab).write(
        built={**pillar.built_settings(files, artifacts.server_url(lab)), **mirrors}
    )
    master.write_config(lab)
    for node in lab.nodes:
        master.write_node_config(lab, node)
    master.ensure_keys(lab)
    pid = master.start(lab)
    progress(f"salt-master: pid {pid}, listening on {lab.bridge_ip}")
    booted = [n.id for n in lab.ordered_nodes() if not containers.nspawn_pid(lab, n)]
    _boot_and_wait(lab, lab.ordered_nodes(), progress)
    elapsed = time.monotonic() - started
    progress(f"up: {len(lab.nodes)} minions answer ({elapsed:.1f}s)")
    return {"seconds": elapsed, "built_rootfs": built, "booted": booted}


def _boot_and_wait(lab, nodes, progress):
    """Boot ``nodes`` (those not running), then wait for each one's systemd and minion."""
    for node in nodes:
        containers.boot(lab, node)
    for node in nodes:
        state = containers.wait_booted(lab, node)
        containers.prepare_runtime(lab, node)
        progress(f"host {node.id}: systemd {state}")
    answered = {}

    def everyone_answers():
        answered.update(master.ping(lab, nodes))
        return all(answered.get(n.id) for n in nodes)

    try:
        wait_until(everyone_answers, 180, interval=1, what="every minion to answer test.ping")
    except LabError as err:
        silent = [n for n in nodes if not answered.get(n.id)]
        raise LabError(f"{err}; silent: {converge.minion_diagnosis(lab, silent)}") from None


def _lab_is_up(lab):
    if not master.master_pid(lab):
        raise LabError("the lab is not up (kubesalt-lab up)")


def stop_host(lab, node_id, progress):
    """Power ``node_id`` off as a pulled plug would (see ``containers.power_off``); its
    disk stays for ``start_host``. Returns the seconds it took."""
    _lab_is_up(lab)
    node = lab.node(node_id)
    started = time.monotonic()
    if not containers.power_off(lab, node):
        progress(f"host {node.id}: already stopped")
    else:
        progress(f"host {node.id}: powered off (every process killed, link down)")
    return time.monotonic() - started


def start_host(lab, node_id, progress):
    """Boot a stopped ``node_id`` again from its own disk and wait for its minion; nothing
    else is done (what runs there starts as its systemd starts it). Returns the seconds."""
    _lab_is_up(lab)
    node = lab.node(node_id)
    started = time.monotonic()
    if containers.nspawn_pid(lab, node):
        progress(f"host {node.id}: already running")
        return 0.0
    net.ensure_node(lab, node)
    _boot_and_wait(lab, [node], progress)
    elapsed = time.monotonic() - started
    progress(f"host {node.id}: booted from its disk, minion answers ({elapsed:.1f}s)")
    return elapsed


def down(lab, progress):
    """Stop and remove everything the lab made, also after an `up` that died half-way."""
    running = [n.id for n in lab.nodes if containers.nspawn_pid(lab, n)]
    if running:
        progress(f"hosts: stopping {', '.join(running)}")
    containers.stop(lab, lab.nodes)
    if master.master_pid(lab):
        progress("salt-master: stopping")
    master.stop(lab)
    artifacts.stop_server(lab)
    registry.stop(lab)
    # Anything still inside a lab namespace is a lab process (a container whose nspawn was
    # killed, a minion): end it by PID before the namespace goes.
    for netns in net.lab_namespaces():
        stop_pids(net.namespace_pids(netns), grace=0)
        net.remove_namespace(netns)
    net.release_netns_dir()
    stop_pids(_lab_processes(lab), grace=0)
    for link in net.lab_links():
        net.remove_link(link)
    for mount in reversed(_lab_mounts(lab)):
        run(["umount", "--lazy", mount], check=False)
    containers.remove_cgroups()
    shutil.rmtree(lab.run_dir, ignore_errors=True)
    shutil.rmtree(lab.rootfs.with_name(lab.rootfs.name + ".new"), ignore_errors=True)
    leftovers = leftovers_of(lab)
    if leftovers:
        raise LabError("down left these behind: " + "; ".join(leftovers))
    progress("down: nothing left")


def _lab_processes(lab):
    """PIDs of the lab's own daemons that outlived their bookkeeping: a systemd-nspawn on
    the lab's rootfs, a salt-master with the lab's config dir, the lab's artifact server."""
    served = str(build.artifacts_dir(lab.cache_dir))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not alive(int(entry.name)):
            continue
        argv = cmdline(int(entry.name))
        is_nspawn = containers.is_lab_nspawn(lab, argv)
        is_master = any(a.endswith("salt-master") for a in argv[:2]) and (
            str(lab.master_dir) in argv
        )
        is_server = "http.server" in argv and served in argv and "--directory" in argv
        is_registry = (
            bool(argv) and argv[0] == str(registry.PROGRAM) and str(lab.run_dir) in " ".join(argv)
        )
        if is_nspawn or is_master or is_server or is_registry:
            found.append(int(entry.name))
    return found


def _lab_mounts(lab):
    markers = (str(lab.run_dir), str(lab.rootfs), str(net.NETNS_DIR / "ksl-"))
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return [p for p in points if p.startswith(markers)]


def leftovers_of(lab):
    """Everything of the lab that still exists: the check behind `down` and its tests."""
    found = []
    found += [f"network namespace {n}" for n in net.lab_namespaces()]
    found += [f"link {name}" for name in net.lab_links()]
    found += [f"mount {m}" for m in _lab_mounts(lab)]
    found += [f"process {pid} ({' '.join(cmdline(pid))[:80]})" for pid in _lab_processes(lab)]
    if net.netns_dir_mounted() and not net.lab_namespaces() and not any(net.NETNS_DIR.iterdir()):
        found.append(f"mount {net.NETNS_DIR} (left by ip netns, now empty)")
    if lab.run_dir.exists():
        found.append(f"directory {lab.run_dir}")
    found += [f"cgroup {path}" for path in containers.cgroups() if path.exists()]
    return found
