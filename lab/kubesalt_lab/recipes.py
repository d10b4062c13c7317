"""How the lab builds each component of the cluster from its own published Go module.

One :class:`Recipe` per ``versions:`` key: the module(s) at the pinned version, the programs
(main packages) with their cgo needs, build tags and version stamps as upstream's own build
sets them, and the release-shaped files packed from them (:class:`Release`: the archive
name and layout upstream publishes, and the pillar ``artifacts:`` entry it serves).

Pure data and functions; ``kubesalt_lab.build`` does the I/O.

A module's own ``replace`` directives are ignored when it is a dependency. The wrapper
module the lab builds in repeats the ones that point at published modules, and turns the
ones that point into the module's own tree (Kubernetes' staging modules, etcd's and
Calico's nested modules), which a module zip does not carry, into their published twins:
that is :meth:`Recipe.local_replacement`.
"""

import re
from dataclasses import dataclass, field

from kubesalt_lab.toolchain import GO_VERSION

KUBERNETES_MODULE = "k8s.io/kubernetes"
CALICO_MODULE = "github.com/projectcalico/calico"
CALICO_API_MODULE = "github.com/projectcalico/api"

# Calico's tags (v3.31.0) are not versions of its module (no /v3 suffix): the module proxy
# knows a Calico release only by the pseudo-version of its commit, and its nested ``api``
# module by that of the published github.com/projectcalico/api at the same release.
CALICO_RELEASES = {
    "3.30.1": ("v0.0.0-20250529224300-393b14e729a6", "v0.0.0-20250617202239-c3be7477438e"),
    "3.31.0": ("v0.0.0-20251021213802-b1f3c43f8437", "v0.0.0-20251022175904-f2ab03771208"),
}


@dataclass(frozen=True)
class Program:
    """One binary: its name in the release and the main package it is built from."""

    name: str
    package: str
    cgo: bool = False
    tags: tuple = ()
    static: bool = False  # link a cgo binary statically (-extldflags -static)
    test: bool = False  # a test binary of the package (`go test -c`), not its main
    # A file of the module's tree whose content upstream's build stamps as main.Version.
    version_file: str | None = None


@dataclass(frozen=True)
class Release:
    """A file as upstream publishes it, and the pillar artifact it is served as.

    ``members`` maps a path inside the archive to a program name (or, with ``source``, a
    file of the module's tree: ``source:<path>``). ``single`` names the program (or
    ``source:<path>``) when the download is the file itself.
    """

    artifact: str
    filename: str
    members: dict = field(default_factory=dict)
    single: str | None = None


@dataclass(frozen=True)
class Resolved:
    """A module version as the proxy reports it."""

    version: str  # the pillar's version, e.g. "1.37.0"
    module_version: str  # the module's, e.g. "v1.37.0" or a pseudo-version
    commit: str  # the VCS revision when the proxy reports it, else ""
    time: str  # the commit time (RFC 3339), for reproducible build dates


@dataclass(frozen=True)
class Recipe:
    name: str  # the versions: key
    modules: tuple  # the modules required, the first the one stamped
    programs: tuple
    releases: tuple
    # version stamps: Resolved -> ["-X", "pkg.Var=value", ...] flattened into -ldflags
    stamps: object = None
    module_version_of: object = None  # "1.37.0" -> "v1.37.0"
    known_versions: object = None  # for versions the proxy cannot list (Calico)
    extra_replaces: object = None  # Resolved -> {module: version}
    go: str = GO_VERSION  # the Go toolchain it is built with (toolchain.TOOLCHAIN_SUMS)
    notes: str = ""
    follows: str | None = None  # the versions: key it is built at, when not its name

    @property
    def pinned_by(self):
        """The ``versions:`` key whose value this recipe is built at."""
        return self.follows or self.name

    def module_version(self, version):
        if self.module_version_of:
            return self.module_version_of(version)
        return f"v{version.lstrip('v')}"

    def local_replacement(self, module, target, resolved):
        """The published module version that replaces ``module => <target in the tree>``,
        or None when the directive only guards the tree (etcd's FORBIDDEN_DEPENDENCY)."""
        if "FORBIDDEN" in target:
            return None
        if KUBERNETES_MODULE in self.modules and module.startswith("k8s.io/"):
            return staging_version(resolved.version)
        if self.name == "calico" and module == CALICO_API_MODULE:
            return CALICO_RELEASES[resolved.version][1]
        # etcd's api, client, pkg, server; Calico's lib/std, lib/httpmachinery: published at
        # the same version (and commit) as the module itself.
        return resolved.module_version


def staging_version(kubernetes_version):
    """Kubernetes 1.37.0's staging modules (k8s.io/api, client-go, ...) are v0.37.0."""
    major, minor, patch = kubernetes_version.lstrip("v").split(".")[:3]
    if major != "1":
        raise ValueError(f"no staging version for Kubernetes {kubernetes_version}")
    return f"v0.{minor}.{patch}"


def _x(pairs):
    flags = []
    for name, value in pairs:
        flags.append(f"-X '{name}={value}'")
    return flags


def _kubernetes_stamps(r):
    major, minor = r.version.split(".")[:2]
    values = {
        "gitVersion": f"v{r.version}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": r.commit,
        # hack/lib/version.sh says "archive" for a tree that is not a git checkout.
        "gitTreeState": "archive",
        "buildDate": r.time,
    }
    pairs = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        pairs += [(f"{package}.{name}", value) for name, value in values.items()]
    return _x(pairs)


def _kube(name, package=None):
    return Program(name, package or f"{KUBERNETES_MODULE}/cmd/{name}")


KUBE_SERVER_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "kubectl",
)

KUBERNETES = Recipe(
    name="kubernetes",
    modules=(KUBERNETES_MODULE,),
    programs=tuple(_kube(name) for name in KUBE_SERVER_BINARIES),
    releases=(
        Release(
            "kubernetes",
            "kubernetes-server-linux-amd64.tar.gz",
            members={f"kubernetes/server/bin/{name}": name for name in KUBE_SERVER_BINARIES},
        ),
    ),
    stamps=_kubernetes_stamps,
    notes="k8s.io/kubernetes with its staging modules at their published v0.Y.Z",
)

ETCD = Recipe(
    name="etcd",
    modules=(
        "go.etcd.io/etcd/server/v3",
        "go.etcd.io/etcd/etcdctl/v3",
        "go.etcd.io/etcd/etcdutl/v3",
    ),
    programs=(
        Program("etcd", "go.etcd.io/etcd/server/v3"),
        Program("etcdctl", "go.etcd.io/etcd/etcdctl/v3"),
        Program("etcdutl", "go.etcd.io/etcd/etcdutl/v3"),
    ),
    releases=(
        Release(
            "etcd",
            "etcd-v{version}-linux-amd64.tar.gz",
            members={
                f"etcd-v{{version}}-linux-amd64/{name}": name
                for name in ("etcd", "etcdctl", "etcdutl")
            },
        ),
    ),
    stamps=lambda r: _x([("go.etcd.io/etcd/api/v3/version.GitSHA", r.commit[:7] or "module")]),
)

_CONTAINERD = "github.com/containerd/containerd/v2"
CONTAINERD = Recipe(
    name="containerd",
    modules=(_CONTAINERD,),
    programs=(
        Program("containerd", f"{_CONTAINERD}/cmd/containerd", tags=("urfave_cli_no_docs",)),
        Program(
            "containerd-shim-runc-v2",
            f"{_CONTAINERD}/cmd/containerd-shim-runc-v2",
            tags=("urfave_cli_no_docs", "no_grpc"),
        ),
        Program("ctr", f"{_CONTAINERD}/cmd/ctr", tags=("urfave_cli_no_docs",)),
    ),
    releases=(
        Release(
            "containerd",
            "containerd-{version}-linux-amd64.tar.gz",
            members={
                f"bin/{name}": name for name in ("containerd", "containerd-shim-runc-v2", "ctr")
            },
        ),
    ),
    stamps=lambda r: _x(
        [
            (f"{_CONTAINERD}/version.Version", f"v{r.version}"),
            (f"{_CONTAINERD}/version.Revision", r.commit),
            (f"{_CONTAINERD}/version.Package", _CONTAINERD),
        ]
    ),
)

RUNC = Recipe(
    name="runc",
    modules=("github.com/opencontainers/runc",),
    # seccomp needs cgo and libseccomp; static, as upstream's runc.amd64 is.
    programs=(
        Program(
            "runc",
            "github.com/opencontainers/runc",
            cgo=True,
            tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"),
            static=True,
        ),
    ),
    releases=(Release("runc", "runc.amd64", single="runc"),),
    # runc embeds its VERSION file; the commit is stamped.
    stamps=lambda r: _x([("main.gitCommit", r.commit)]),
)

_CNI = "github.com/containernetworking/plugins"
CNI_PLUGIN_PACKAGES = {
    "bridge": "plugins/main/bridge",
    "loopback": "plugins/main/loopback",
    "host-local": "plugins/ipam/host-local",
    "portmap": "plugins/meta/portmap",
    "bandwidth": "plugins/meta/bandwidth",
    "tuning": "plugins/meta/tuning",
}
CNI_PLUGINS = Recipe(
    name="cni_plugins",
    modules=(_CNI,),
    programs=tuple(Program(name, f"{_CNI}/{pkg}") for name, pkg in CNI_PLUGIN_PACKAGES.items()),
    releases=(
        Release(
            "cni_plugins",
            "cni-plugins-linux-amd64-v{version}.tgz",
            members={f"./{name}": name for name in CNI_PLUGIN_PACKAGES},
        ),
    ),
    stamps=lambda r: _x([(f"{_CNI}/pkg/utils/buildversion.BuildVersion", f"v{r.version}")]),
)

CRICTL = Recipe(
    name="crictl",
    modules=("sigs.k8s.io/cri-tools",),
    programs=(Program("crictl", "sigs.k8s.io/cri-tools/cmd/crictl"),),
    releases=(
        Release("crictl", "crictl-v{version}-linux-amd64.tar.gz", members={"crictl": "crictl"}),
    ),
    stamps=lambda r: _x([("sigs.k8s.io/cri-tools/pkg/version.Version", f"v{r.version}")]),
)

_BUILDINFO = f"{CALICO_MODULE}/pkg/buildinfo"


def _calico_module_version(version):
    release = CALICO_RELEASES.get(version.lstrip("v"))
    if release is None:
        raise KeyError(version)
    return release[0]


CALICO = Recipe(
    name="calico",
    modules=(CALICO_MODULE,),
    # Calico's release toolchain line, not the default: see toolchain.TOOLCHAIN_SUMS.
    go="1.24.9",
    # Without cgo felix has no eBPF dataplane (libbpf): kubesalt uses iptables/nftables.
    programs=(
        Program("calico-node", f"{CALICO_MODULE}/node/cmd/calico-node"),
        Program("calico-typha", f"{CALICO_MODULE}/typha/cmd/calico-typha"),
        Program("calico", f"{CALICO_MODULE}/cni-plugin/cmd/calico"),
        Program(
            "calico-kube-controllers", f"{CALICO_MODULE}/kube-controllers/cmd/kube-controllers"
        ),
        Program("check-status", f"{CALICO_MODULE}/kube-controllers/cmd/check-status"),
    ),
    releases=(
        Release("calico_node", "calico-node-amd64", single="calico-node"),
        Release("calico_typha", "calico-typha-amd64", single="calico-typha"),
        Release("calico_crds", "crds.yaml", single="source:manifests/crds.yaml"),
        # The CNI plugin is one binary that also answers as calico-ipam (by argv[0]).
        Release(
            "calico_cni",
            "calico-cni-linux-amd64-v{version}.tgz",
            members={"calico": "calico", "calico-ipam": "calico"},
        ),
        # kube-controllers and the check its probes run (made into an image by the lab).
        Release(
            "calico_kube_controllers",
            "calico-kube-controllers-linux-amd64-v{version}.tgz",
            members={"kube-controllers": "calico-kube-controllers", "check-status": "check-status"},
        ),
    ),
    stamps=lambda r: _x(
        [
            (f"{_BUILDINFO}.Version", f"v{r.version}"),
            (f"{_BUILDINFO}.GitRevision", r.commit),
            (f"{_BUILDINFO}.BuildDate", r.time),
        ]
    ),
    module_version_of=_calico_module_version,
    known_versions=lambda: sorted(CALICO_RELEASES, key=version_key),
    extra_replaces=lambda r: {CALICO_API_MODULE: CALICO_RELEASES[r.version][1]},
    notes="Calico's monorepo by the pseudo-version of its release commit",
)

COREDNS = Recipe(
    name="coredns",
    modules=("github.com/coredns/coredns",),
    programs=(Program("coredns", "github.com/coredns/coredns"),),
    releases=(
        Release("coredns", "coredns_{version}_linux_amd64.tgz", members={"coredns": "coredns"}),
    ),
    stamps=lambda r: _x([("github.com/coredns/coredns/coremain.GitCommit", r.commit[:7])]),
)

RECIPES = (KUBERNETES, ETCD, CONTAINERD, RUNC, CNI_PLUGINS, CRICTL, CALICO, COREDNS)
BY_NAME = {recipe.name: recipe for recipe in RECIPES}

# --- what the lab tests the cluster with: built on demand, never part of the cluster --------

# The conformance suite and the programs of its test images, from the same k8s.io/kubernetes
# version as the cluster (upstream's kubernetes-test-linux-amd64.tar.gz holds e2e.test and
# ginkgo; the images' programs are built as test/images/image-util.sh builds them). ginkgo
# comes at the version k8s.io/kubernetes requires, sample-apiserver from its staging module.
KUBERNETES_TEST = Recipe(
    name="kubernetes_test",
    follows="kubernetes",
    modules=(KUBERNETES_MODULE,),
    programs=(
        Program("e2e.test", f"{KUBERNETES_MODULE}/test/e2e", test=True),
        Program("ginkgo", "github.com/onsi/ginkgo/v2/ginkgo"),
        Program(
            "agnhost",
            f"{KUBERNETES_MODULE}/test/images/agnhost",
            version_file="test/images/agnhost/VERSION",
        ),
        Program("nnp", f"{KUBERNETES_MODULE}/test/images/nonewprivs"),
        Program("sample-apiserver", "k8s.io/sample-apiserver"),
    ),
    releases=(
        Release(
            "kubernetes_test",
            "kubernetes-test-linux-amd64.tar.gz",
            members={
                "kubernetes/test/bin/e2e.test": "e2e.test",
                "kubernetes/test/bin/ginkgo": "ginkgo",
            },
        ),
        Release(
            "e2e_image_programs",
            "e2e-image-programs-linux-amd64.tar.gz",
            members={name: name for name in ("agnhost", "nnp", "sample-apiserver")},
        ),
    ),
    stamps=_kubernetes_stamps,
    notes="k8s.io/kubernetes' e2e suite and test images, staging modules at their v0.Y.Z",
)


# kube-bench, the runner of the CIS Kubernetes benchmark, at a pinned version: the module
# proxy serves v0.15.6 but refuses its version list, so `go install ...@v0.15.6` fails while
# this wrapper-module build works. Its checks (cfg/) come from the same module: the main
# config and the one benchmark its config maps Kubernetes 1.34+ to.
KUBE_BENCH_VERSION = "0.15.6"
KUBE_BENCH_BENCHMARK = "cis-1.12"
_KUBE_BENCH = "github.com/aquasecurity/kube-bench"
_KUBE_BENCH_CHECKS = ("config", "master", "node", "etcd", "controlplane", "policies")
KUBE_BENCH = Recipe(
    name="kube_bench",
    modules=(_KUBE_BENCH,),
    programs=(Program("kube-bench", _KUBE_BENCH),),
    releases=(
        Release(
            "kube_bench",
            "kube-bench_{version}_linux_amd64.tar.gz",
            members={
                "kube-bench": "kube-bench",
                "cfg/config.yaml": "source:cfg/config.yaml",
                **{
                    f"cfg/{KUBE_BENCH_BENCHMARK}/{name}.yaml": (
                        f"source:cfg/{KUBE_BENCH_BENCHMARK}/{name}.yaml"
                    )
                    for name in _KUBE_BENCH_CHECKS
                },
            },
        ),
    ),
    stamps=lambda r: _x([(f"{_KUBE_BENCH}/cmd.KubeBenchVersion", f"v{r.version}")]),
    notes="kube-bench at an exact version (the proxy lists none)",
)


def version_key(version):
    """Sort key for dotted versions ("1.37.10" after "1.37.9")."""
    return tuple(int(part) if part.isdigit() else 0 for part in re.split(r"[.-]", version))


def ldflags(recipe_, resolved):
    """The -ldflags string: stripped binaries (as upstream releases are), version stamps."""
    stamps = recipe_.stamps(resolved) if recipe_.stamps else []
    return " ".join(["-s", "-w", *stamps])


# Bumped when the way files are packed changes, so cached builds are packed again.
PACKING = "2"


def _program_key(program):
    key = f"{program.name}={program.package}:{program.cgo}:{','.join(program.tags)}"
    key += f":{program.static}"
    if program.test or program.version_file:
        key += f":test={program.test}:version_file={program.version_file}"
    return key


def build_key(recipe_, resolved, go_version):
    """What a finished build depends on; a cached build with the same key is reused."""
    parts = [
        f"packing {PACKING}",
        recipe_.name,
        resolved.module_version,
        go_version,
        ldflags(recipe_, resolved),
        *(_program_key(p) for p in recipe_.programs),
        *(
            f"{r.artifact}={r.filename}:{sorted(r.members.items())}:{r.single}"
            for r in recipe_.releases
        ),
    ]
    return "\n".join(parts)


_REPLACE_RE = re.compile(r"^\s*(\S+)(?:\s+(\S+))?\s+=>\s+(\S+)(?:\s+(\S+))?\s*$")


def parse_replaces(go_mod_text):
    """``[(module, module_version or None, target, target_version or None)]`` of a go.mod's
    replace directives, single-line and block forms."""
    replaces, in_block = [], False
    for raw in go_mod_text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
                continue
            body = line
        elif line.startswith("replace"):
            body = line[len("replace") :].strip()
            if body == "(":
                in_block = True
                continue
        else:
            continue
        match = _REPLACE_RE.match(body)
        if match:
            replaces.append(match.groups())
    return replaces


def is_local(target):
    return target.startswith(("./", "../", "/"))


def wrapper_replaces(recipe_, resolved, upstream_go_mods):
    """``{module: (target, version)}`` for the wrapper module: the upstream modules' own
    remote replaces, their local ones turned into published modules, and the recipe's."""
    replaces = {}
    for text in upstream_go_mods:
        for module, _mversion, target, tversion in parse_replaces(text):
            if is_local(target):
                version = recipe_.local_replacement(module, target, resolved)
                if version is None:
                    continue
                replaces[module] = (module, version)
            else:
                replaces[module] = (target, tversion)
    if recipe_.extra_replaces:
        for module, version in recipe_.extra_replaces(resolved).items():
            replaces[module] = (module, version)
    # A module never replaces itself.
    for module in recipe_.modules:
        replaces.pop(module, None)
    return replaces


def wrapper_go_mod(recipe_, resolved, replaces):
    """The go.mod of the module the lab builds ``recipe_`` in."""
    lines = [
        f"module kubesalt.lab/build/{recipe_.name.replace('_', '-')}",
        "",
        "go 1.24",
        "",
        "require (",
        *(f"\t{module} {resolved.module_version}" for module in recipe_.modules),
        ")",
    ]
    if replaces:
        lines += ["", "replace ("]
        for module in sorted(replaces):
            target, version = replaces[module]
            lines.append(f"\t{module} => {target}{' ' + version if version else ''}")
        lines.append(")")
    return "\n".join(lines) + "\n"


def tools_go(recipe_):
    """A file that imports every program's package, so that `go mod tidy` records their
    dependencies; the build tag keeps it out of every build."""
    imports = sorted({p.package for p in recipe_.programs})
    body = "\n".join(f'\t_ "{package}"' for package in imports)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{body}\n)\n"


def release_filename(release, version):
    return release.filename.format(version=version)


def release_members(release, version):
    return {member.format(version=version): source for member, source in release.members.items()}


def pillar_settings(built):
    """``{"artifacts:<name>": {source: url, url, sha256}}`` for built releases.

    built
        ``[(release artifact, url, sha256)]``.
    """
    return {
        f"artifacts:{artifact}": {"source": "url", "url": url, "sha256": sha256}
        for artifact, url, sha256 in built
    }
