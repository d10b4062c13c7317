"""The built tier: every component built from its Go module (the lab's build cache), and
the built programs asked about what kubesalt renders for them.

The first run builds everything (tens of minutes on 2 cores); later runs find the builds in
the cache (``/var/cache/kubesalt-lab``, or ``KUBESALT_LAB_CACHE``) and take seconds.
"""

import tarfile

import pytest

import kubesalt_core.pillar
from kubesalt_lab import build, config
from kubesalt_lab.pillar import lab_config


def _quiet(_message):
    pass


@pytest.fixture(scope="session")
def lab(lab_cache):
    return config.load()


@pytest.fixture(scope="session")
def built(lab):
    """{component: [build.Built]} at the versions the lab's pillar pins."""
    results, _rows = build.build_all(lab.cache_dir, lab.versions(), _quiet)
    return results


@pytest.fixture(scope="session")
def programs(built, tmp_path_factory):
    """{program name: path} of every built program, unpacked from its release file."""
    where = tmp_path_factory.mktemp("programs")
    found = {}
    for files in built.values():
        for item in files:
            if item.path.name.endswith((".tar.gz", ".tgz")):
                with tarfile.open(item.path) as archive:
                    for member in archive.getmembers():
                        if member.isfile():
                            name = member.name.rsplit("/", 1)[-1]
                            target = where / item.artifact / name
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(archive.extractfile(member).read())
                            target.chmod(0o755)
                            found.setdefault(name, target)
            elif not item.path.name.endswith(".yaml"):
                found[item.path.name.replace("-amd64", "").replace(".amd64", "")] = item.path
    return found


@pytest.fixture(scope="session")
def cluster():
    """The lab cluster's config with every artifact from a release archive (as the lab
    serves them), paths resolved: what a master and a worker render."""
    cluster = lab_config()
    for name in ("kubernetes", "etcd", "containerd", "runc", "crictl", "cni_plugins"):
        cluster["artifacts"][name] = {"source": "url", "url": "http://x/a", "sha256": "a" * 64}
    for name in ("calico_node", "calico_typha", "calico_crds"):
        cluster["artifacts"][name] = {"source": "url", "url": "http://x/a", "sha256": "a" * 64}
    cluster["paths"] = kubesalt_core.pillar.resolve_paths(cluster["paths"])
    return cluster
