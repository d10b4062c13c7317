"""Which binaries each artifact provides, where they sit in its release, who runs them.

The catalogue is data (like the certificate catalogue): one record per installed binary
with its artifact, its path inside the upstream release archive (``{version}`` is
replaced; an empty member means the download is the binary itself), the directory it goes
to and the roles that need it. The units that run a binary (restarted when it changes, and
only those) are the components' (``kubesalt_core.components.units_of_binary``). Pillar
``artifacts:<artifact>`` says where the artifact comes from; ``members`` there overrides a
path inside the archive.

The decision what to (re)install is :func:`plan`; the I/O is in ``_modules/kubesalt_artifact.py``.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Binary:
    name: str
    artifact: str
    member: str
    dest: str  # a paths: key
    roles: tuple


def _kube(name, roles):
    return Binary(name, "kubernetes", f"kubernetes/server/bin/{name}", "bin_dir", roles)


_CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap", "bandwidth", "tuning")

CATALOGUE = (
    # kubernetes-server-linux-amd64.tar.gz
    _kube("kube-apiserver", ("master",)),
    _kube("kube-controller-manager", ("master",)),
    _kube("kube-scheduler", ("master",)),
    _kube("kubectl", ("master",)),
    _kube("kubelet", ("worker",)),
    _kube("kube-proxy", ("worker",)),
    # etcd-v<version>-linux-amd64.tar.gz
    Binary("etcd", "etcd", "etcd-v{version}-linux-amd64/etcd", "bin_dir", ("master",)),
    Binary("etcdctl", "etcd", "etcd-v{version}-linux-amd64/etcdctl", "bin_dir", ("master",)),
    # Reads and checks snapshots (etcd 3.5 and newer; older etcdctl does it itself).
    Binary("etcdutl", "etcd", "etcd-v{version}-linux-amd64/etcdutl", "bin_dir", ("master",)),
    # containerd-<version>-linux-amd64.tar.gz
    Binary("containerd", "containerd", "bin/containerd", "bin_dir", ("worker",)),
    Binary("containerd-shim-runc-v2", "containerd", "bin/containerd-shim-runc-v2", "bin_dir",
           ("worker",)),
    Binary("ctr", "containerd", "bin/ctr", "bin_dir", ("worker",)),
    # runc.amd64 (the download is the binary)
    Binary("runc", "runc", "", "bin_dir", ("worker",)),
    # crictl-v<version>-linux-amd64.tar.gz
    Binary("crictl", "crictl", "crictl", "bin_dir", ("worker",)),
    # cni-plugins-linux-amd64-v<version>.tgz
    *(Binary(name, "cni_plugins", f"./{name}", "cni_bin_dir", ("worker",))
      for name in _CNI_PLUGINS),
    # calico-node runs as felix and as confd; calico-typha on the masters. Calico ships them
    # in its images; kubesalt takes each as a single binary (the download is the binary).
    Binary("calico-node", "calico_node", "", "bin_dir", ("worker",)),
    Binary("calico-typha", "calico_typha", "", "bin_dir", ("master",)),
    # calico-cni-linux-amd64-v<version>.tgz: Calico's CNI plugin, which also answers as
    # calico-ipam (by the name it is called with).
    Binary("calico", "calico_cni", "calico", "cni_bin_dir", ("worker",)),
    Binary("calico-ipam", "calico_cni", "calico-ipam", "cni_bin_dir", ("worker",)),
    # BIRD for calico-confd on workers and on the routers: Debian's bird2 package, or a
    # site's archive of BIRD's `make install` (BIRD publishes sources only), with birdc,
    # which reloads a running BIRD (the router's unit, confd's reload command).
    Binary("bird", "bird", "sbin/bird", "bin_dir", ("worker", "router")),
    Binary("birdc", "bird", "sbin/birdc", "bin_dir", ("worker", "router")),
    # The node-local apiserver proxy on workers (Debian's haproxy package, or a binary).
    Binary("haproxy", "haproxy", "", "bin_dir", ("worker",)),
    # Calico's CRD manifest (a release's manifests/crds.yaml): applied by one master, never
    # copied into the formula.
    Binary("calico-crds.yaml", "calico_crds", "", "manifest_dir", ("master",)),
)  # fmt: skip

ARTIFACTS = tuple(dict.fromkeys(b.artifact for b in CATALOGUE))
# The `versions` key an artifact is pinned by, where it is not the artifact's own name.
_VERSION_KEYS = {
    "calico_node": "calico",
    "calico_typha": "calico",
    "calico_crds": "calico",
    "calico_cni": "calico",
}

# Where Debian's packages put a binary, where that is not /usr/bin/<name>.
_PACKAGE_PATHS = {
    "runc": "/usr/sbin/runc",
    "bird": "/usr/sbin/bird",
    "birdc": "/usr/sbin/birdc",
    "haproxy": "/usr/sbin/haproxy",
}


def version_key(artifact):
    return _VERSION_KEYS.get(artifact, artifact)


def for_roles(roles):
    """The binaries a node with ``roles`` needs, in catalogue order."""
    return [b for b in CATALOGUE if set(b.roles) & set(roles)]


def binary(name):
    found = next((b for b in CATALOGUE if b.name == name), None)
    if found is None:
        known = ", ".join(b.name for b in CATALOGUE)
        raise KeyError(f"{name!r} is not in the artifact catalogue; known: {known}")
    return found


def binaries_of(artifact):
    return [b.name for b in CATALOGUE if b.artifact == artifact]


def path_source(spec, artifact, name):
    """Where ``source: path`` puts binary ``name``: ``path`` itself for an artifact of one
    binary, ``path/<name>`` (a directory) for an artifact of several (kubernetes, etcd,
    containerd, cni_plugins)."""
    if len(binaries_of(artifact)) > 1:
        return f"{spec['path'].rstrip('/')}/{name}"
    return spec["path"]


def executable(config, artifact, name):
    """Where binary ``name`` of ``artifact`` is on a node, by the artifact's pillar source.

    ``url`` (and an artifact pillar does not give): the catalogue's directory (where
    kubesalt installs it, or would); ``package``: where the distribution puts it; ``path``:
    the path pillar gives.
    """
    spec = (config.get("artifacts") or {}).get(artifact) or {}
    source = spec.get("source")
    if source == "package":
        return _PACKAGE_PATHS.get(name, f"/usr/bin/{name}")
    if source == "path":
        return path_source(spec, artifact, name)
    found = next((b for b in CATALOGUE if b.name == name), None)
    dest = found.dest if found else "bin_dir"
    return f"{config['paths'][dest]}/{name}"


def available(config, artifact):
    """True when pillar gives ``artifact`` (without it, the units that need it are written
    and left stopped, and said so)."""
    return bool((config.get("artifacts") or {}).get(artifact))


def member_of(entry, spec, version):
    """The path inside the archive for ``entry``, from pillar ``members`` or the catalogue."""
    member = (spec.get("members") or {}).get(entry.name, entry.member)
    return member.format(version=version)


def record_for(spec, version, member, sha256):
    """What kubesalt writes beside an installed binary from a url source."""
    return {
        "url": spec["url"],
        "archive_sha256": spec["sha256"],
        "version": version,
        "member": member,
        "sha256": sha256,
    }


def plan(spec, version, on_disk_sha256, record):
    """Why the binary must be (re)installed from a url source, or None when it is current.

    spec
        pillar ``artifacts:<artifact>`` (``source: url``, ``url``, ``sha256``).
    on_disk_sha256
        The installed file's sha256, or None when there is none.
    record
        What kubesalt recorded when it installed the file (see :func:`record_for`), or
        None.
    """
    if on_disk_sha256 is None:
        return "missing"
    if record is None:
        return "not installed by kubesalt"
    if record.get("archive_sha256") != spec["sha256"]:
        old, new = record.get("version"), version
        return f"new artifact: {old} -> {new}" if old != new else "new artifact sha256"
    if record.get("sha256") != on_disk_sha256:
        return "changed on disk since kubesalt installed it"
    return None
