"""The lab's build recipes as data: which replace directives the wrapper module repeats,
the version stamps, the release layouts, what a cached build depends on, and the pillar the
built files become."""

from pathlib import Path

import pytest

import kubesalt_core.artifact
from kubesalt_lab import build, pillar, recipes

K8S_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tgithub.com/x/y v1.2.3 // indirect
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go // the staging copy
)
"""

ETCD_GO_MOD = """module go.etcd.io/etcd/server/v3

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgo.etcd.io/etcd/client/v3 => ../client/v3
)

// Bad imports are sometimes causing attempts to pull that code.
replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""

CALICO_GO_MOD = """module github.com/projectcalico/calico

replace (
\tgithub.com/projectcalico/api => ./api
\tgithub.com/projectcalico/calico/lib/std => ./lib/std
\tk8s.io/api => k8s.io/api v0.33.5
\tgopkg.in/natefinch/lumberjack.v2 => gopkg.in/natefinch/lumberjack.v2 v2.0.0
)
"""


def _resolved(recipe, version, commit="abc1234def"):
    return recipes.Resolved(version, recipe.module_version(version), commit, "2026-08-26T10:44:20Z")


def test_parse_replaces_reads_both_forms_and_ignores_comments():
    found = recipes.parse_replaces(ETCD_GO_MOD)
    assert found == [
        ("go.etcd.io/etcd/api/v3", None, "../api", None),
        ("go.etcd.io/etcd/client/v3", None, "../client/v3", None),
        ("go.etcd.io/etcd", None, "./FORBIDDEN_DEPENDENCY", None),
    ]
    assert ("k8s.io/api", None, "k8s.io/api", "v0.33.5") in recipes.parse_replaces(CALICO_GO_MOD)


def test_kubernetes_staging_modules_become_their_published_v0_twins():
    resolved = _resolved(recipes.KUBERNETES, "1.37.0")
    replaces = recipes.wrapper_replaces(recipes.KUBERNETES, resolved, [K8S_GO_MOD])
    assert replaces == {
        "k8s.io/api": ("k8s.io/api", "v0.37.0"),
        "k8s.io/client-go": ("k8s.io/client-go", "v0.37.0"),
    }
    text = recipes.wrapper_go_mod(recipes.KUBERNETES, resolved, replaces)
    assert "\tk8s.io/kubernetes v1.37.0\n" in text
    assert "\tk8s.io/client-go => k8s.io/client-go v0.37.0\n" in text
    with pytest.raises(ValueError):
        recipes.staging_version("2.0.0")


def test_etcds_siblings_take_its_version_and_guards_are_dropped():
    resolved = _resolved(recipes.ETCD, "3.6.5")
    replaces = recipes.wrapper_replaces(recipes.ETCD, resolved, [ETCD_GO_MOD])
    assert replaces == {
        "go.etcd.io/etcd/api/v3": ("go.etcd.io/etcd/api/v3", "v3.6.5"),
        "go.etcd.io/etcd/client/v3": ("go.etcd.io/etcd/client/v3", "v3.6.5"),
    }


def test_calico_is_known_by_its_commits_pseudo_version_and_its_api_twin():
    resolved = _resolved(recipes.CALICO, "3.31.0")
    assert resolved.module_version == "v0.0.0-20251021213802-b1f3c43f8437"
    replaces = recipes.wrapper_replaces(recipes.CALICO, resolved, [CALICO_GO_MOD])
    assert replaces["github.com/projectcalico/api"] == (
        "github.com/projectcalico/api",
        "v0.0.0-20251022175904-f2ab03771208",
    )
    assert replaces["github.com/projectcalico/calico/lib/std"][1] == resolved.module_version
    # Remote replaces are repeated as they are.
    assert replaces["k8s.io/api"] == ("k8s.io/api", "v0.33.5")
    with pytest.raises(KeyError):
        recipes.CALICO.module_version("3.32.1")


def test_version_stamps_are_the_ones_upstream_builds_set():
    flags = recipes.ldflags(recipes.KUBERNETES, _resolved(recipes.KUBERNETES, "1.37.0"))
    assert flags.startswith("-s -w ")
    for stamp in (
        "-X 'k8s.io/component-base/version.gitVersion=v1.37.0'",
        "-X 'k8s.io/component-base/version.gitMinor=37'",
        "-X 'k8s.io/client-go/pkg/version.gitVersion=v1.37.0'",
        "-X 'k8s.io/component-base/version.gitTreeState=archive'",
    ):
        assert stamp in flags
    calico = recipes.ldflags(recipes.CALICO, _resolved(recipes.CALICO, "3.31.0"))
    assert "-X 'github.com/projectcalico/calico/pkg/buildinfo.Version=v3.31.0'" in calico


def test_a_cached_build_is_reused_only_for_the_same_inputs():
    resolved = _resolved(recipes.KUBERNETES, "1.37.0")
    key = recipes.build_key(recipes.KUBERNETES, resolved, "1.26.8")
    assert key == recipes.build_key(recipes.KUBERNETES, resolved, "1.26.8")
    assert key != recipes.build_key(recipes.KUBERNETES, resolved, "1.26.9")
    other = _resolved(recipes.KUBERNETES, "1.37.0", commit="fff")  # a stamped value
    assert key != recipes.build_key(recipes.KUBERNETES, other, "1.26.8")


def test_tools_file_imports_every_program_and_never_builds():
    text = recipes.tools_go(recipes.ETCD)
    assert text.startswith("//go:build tools\n")
    for program in recipes.ETCD.programs:
        assert f'_ "{program.package}"' in text


def test_every_release_the_pillar_knows_is_an_artifact_of_the_catalogue():
    served = {r.artifact for recipe in recipes.RECIPES for r in recipe.releases}
    # Everything kubesalt installs is built (BIRD and HAProxy are Debian's), and more
    # besides (CoreDNS, the Calico CNI plugin and kube-controllers, for the workers' step).
    assert set(kubesalt_core.artifact.ARTIFACTS) - served == {"bird", "haproxy"}
    assert recipes.release_filename(recipes.ETCD.releases[0], "3.6.5") == (
        "etcd-v3.6.5-linux-amd64.tar.gz"
    )
    assert recipes.release_members(recipes.ETCD.releases[0], "3.6.5") == {
        f"etcd-v3.6.5-linux-amd64/{p}": p for p in ("etcd", "etcdctl", "etcdutl")
    }


def test_built_files_become_url_sources_for_the_artifacts_kubesalt_knows():
    files = [
        build.Built("etcd", "3.6.5", "etcd", Path("/c/etcd-v3.6.5-linux-amd64.tar.gz"), "a" * 64),
        build.Built("coredns", "1.13.1", "coredns", Path("/c/coredns.tgz"), "b" * 64),
    ]
    settings = pillar.built_settings(files, "http://198.18.0.1:8780")
    assert settings == {
        "artifacts:etcd": {
            "source": "url",
            "url": "http://198.18.0.1:8780/etcd/3.6.5/etcd-v3.6.5-linux-amd64.tar.gz",
            "sha256": "a" * 64,
        }
    }


def test_pillar_layers_apply_in_order_and_replace_what_is_at_their_path():
    base = {"versions": {"etcd": "3.6.5"}, "artifacts": {"bird": {"source": "package"}}}
    built = {"artifacts:kubernetes": {"source": "url", "url": "u", "sha256": "s"}}
    overrides = {"versions:etcd": "3.5.1", "artifacts:kubernetes": {"source": "path"}}
    tree = pillar.layered(base, built, overrides)
    assert tree["artifacts"]["kubernetes"] == {"source": "path"}  # replaced, not merged
    assert tree["artifacts"]["bird"] == {"source": "package"}
    assert tree["versions"]["etcd"] == "3.5.1"
    assert base == {"versions": {"etcd": "3.6.5"}, "artifacts": {"bird": {"source": "package"}}}


def test_release_archives_are_reproducible(tmp_path):
    source = tmp_path / "bin"
    source.write_bytes(b"\x7fELF fake")
    first = build.release_archive(tmp_path / "a.tar.gz", {"kubernetes/server/bin/x": source})
    second = build.release_archive(tmp_path / "b.tar.gz", {"kubernetes/server/bin/x": source})
    assert first == second == build.file_sha256(tmp_path / "a.tar.gz")
    assert (
        build.sums_file([build.Built("k", "1", "k", tmp_path / "a.tar.gz", first)])
        == f"{first}  k/1/a.tar.gz\n"
    )
