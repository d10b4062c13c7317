"""The pillar the lab's salt-master serves: the repo's example cluster plus two layers.

1. **built**: every artifact the lab built (``kubesalt-lab build``), as ``source: url``
   with the URL of the lab's artifact server and the archive's sha256, and the lab's
   registry as the mirror of every registry the cluster's images name: the nodes install
   and pull them exactly as an air-gapped production site does.
2. **overrides**: what an operator or a test set with ``kubesalt-lab pillar`` (a version,
   an archive URL); each value replaces what is at its path.

Each layer replaces values at colon paths of the ``kubesalt`` tree; the result is written
as one complete pillar file, so nothing is merged by Salt.
"""

import copy
import json
from pathlib import Path

import yaml

import kubesalt_core.artifact
import kubesalt_core.pillar
import kubesalt_core.pillar_checks
import kubesalt_core.pillar_schema
from kubesalt_lab.config import FORMULA_DEFAULTS, LAB_PILLAR, LabError


def lab_pillar():
    """The repo's example cluster (the lab's ``kubesalt`` pillar), as a fresh dict."""
    return yaml.safe_load(LAB_PILLAR.read_text())["kubesalt"]


def formula_defaults():
    """The formula's ``defaults.yaml``, as a fresh dict."""
    return yaml.safe_load(FORMULA_DEFAULTS.read_text())


def lab_config():
    """The lab pillar merged over the formula defaults: what ``kubesalt.config`` sees on a
    lab node (paths not resolved)."""
    return kubesalt_core.pillar.merge(formula_defaults(), lab_pillar())


def set_path(tree, path, value):
    """Replace the value at colon ``path`` of ``tree`` (making mappings on the way)."""
    *parents, last = path.split(":")
    for key in parents:
        tree = tree.setdefault(key, {})
        if not isinstance(tree, dict):
            raise LabError(f"pillar setting {path!r}: {key!r} is not a mapping")
    tree[last] = copy.deepcopy(value)


def built_settings(built, base_url):
    """``{"artifacts:<name>": {source: url, url, sha256}}`` for the built files kubesalt's
    pillar knows (the others are built for later steps and served all the same)."""
    return {
        f"artifacts:{b.artifact}": {
            "source": "url",
            "url": f"{base_url}/{b.relative}",
            "sha256": b.sha256,
        }
        for b in built
        if b.artifact in kubesalt_core.artifact.ARTIFACTS
    }


def layered(base, built, overrides):
    """The ``kubesalt`` tree with the layers applied in order (see the module docstring)."""
    tree = copy.deepcopy(base)
    for layer in (built, overrides):
        for path, value in layer.items():
            set_path(tree, path, value)
    return tree


class LabPillar:
    """The layers as files in the master's pillar overlay folder."""

    def __init__(self, overlay_dir, pillar_file=LAB_PILLAR):
        self.dir = Path(overlay_dir)
        self.pillar_file = Path(pillar_file)

    def _read(self, name):
        path = self.dir / name
        return json.loads(path.read_text()) if path.exists() else {}

    def _write(self, name, data):
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    @property
    def built(self):
        return self._read("built.json")

    @property
    def overrides(self):
        return self._read("overrides.json")

    def base(self):
        return yaml.safe_load(self.pillar_file.read_text())["kubesalt"]

    def tree(self, built=None, overrides=None):
        """The ``kubesalt`` pillar every node gets (with the layers given in place of the
        saved ones)."""
        return layered(
            self.base(),
            self.built if built is None else built,
            self.overrides if overrides is None else overrides,
        )

    def config(self, built=None, overrides=None):
        """That pillar merged over the formula defaults, as the minions see it."""
        defaults = yaml.safe_load(FORMULA_DEFAULTS.read_text())
        return kubesalt_core.pillar.merge(defaults, self.tree(built, overrides))

    def versions(self, overrides=None):
        return dict(self.config(overrides=overrides).get("versions") or {})

    def write(self, built=None, overrides=None):
        """Save the layers given and write the pillar file and the top file. An invalid
        result is refused (naming the keys) before anything is written."""
        problems = kubesalt_core.pillar_checks.errors(
            kubesalt_core.pillar_schema.validate(self.config(built, overrides))
        )
        if problems:
            raise LabError("the lab's pillar would be invalid: " + "; ".join(map(str, problems)))
        tree = self.tree(built, overrides)
        if built is not None:
            self._write("built.json", built)
        if overrides is not None:
            self._write("overrides.json", overrides)
        (self.dir / "lab_pillar.sls").write_text(
            yaml.safe_dump({"kubesalt": tree}, sort_keys=False)
        )
        (self.dir / "top.sls").write_text(
            "# Written by kubesalt-lab (see kubesalt_lab.pillar).\n"
            "base:\n  '*':\n    - lab_pillar\n"
        )


# Settings for trying etcd's upgrade path from Debian's etcd 3.4.23 (the rootfs has it).
# The pinned Kubernetes is not meant for etcd 3.4, so the masters run etcd alone: apply
# ETCD_ALONE_SLS to them, not a highstate (the etcd upgrade orchestration applies it too).
ETCD_FROM_DEBIAN = {
    "versions:etcd": "3.4.23",
    "artifacts:etcd": {"source": "package", "package": "etcd-server"},
}
ETCD_ALONE_SLS = "kubesalt.etcd"

# The etcd minor before the pinned one, which the etcd upgrade test passes through.
ETCD_PREVIOUS_MINOR = "3.6.5"

# The Kubernetes the upgrade starts from: the newest patch of the minor before the pinned
# one that the module proxy serves (the lab builds it like the pinned one).
KUBERNETES_PREVIOUS_MINOR = "1.36.3"
