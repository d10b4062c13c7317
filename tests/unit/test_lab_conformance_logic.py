"""The conformance runner's decisions, without a cluster: which images the suite names, the
self-contained kubeconfig, how the suite is built, which specs a run selects, how its
output and reports are read."""

import base64
import io
import json
import tarfile

import pytest

from kubesalt_lab import build, busybox, conformance, debian_layer, e2e_images, images, recipes
from kubesalt_lab.config import LabError, Node

MANIFEST = """
var (
	initRegistry = RegistryList{
		// TODO: a comment
		PromoterE2eRegistry:      "registry.k8s.io/e2e-test-images",
		BuildImageRegistry:       "registry.k8s.io/build-image",
		InvalidRegistry:          "invalid.registry.k8s.io/invalid",
		GcEtcdRegistry:           "registry.k8s.io",
		GcRegistry:               "registry.k8s.io",
		PrivateRegistry:          "gcr.io/k8s-authenticated-test",
	}
)

func initImageConfigs(list RegistryList) (map[ImageID]Config, map[ImageID]Config) {
	configs := map[ImageID]Config{}
	configs[AgnhostPrev] = Config{list.PromoterE2eRegistry, "agnhost", "2.55"}
	configs[Agnhost] = Config{list.PromoterE2eRegistry, "agnhost", "2.66.1"}
	configs[AgnhostPrivate] = Config{list.PrivateRegistry, "agnhost", "2.6"}
	configs[APIServer] = Config{list.PromoterE2eRegistry, "sample-apiserver", "1.29.2"}
	configs[BusyBox] = Config{list.PromoterE2eRegistry, "busybox", "1.37.0-2"}
	configs[Etcd] = Config{list.GcEtcdRegistry, "etcd", "3.7.0-0"}
	configs[GlibcDnsTesting] = Config{list.PromoterE2eRegistry, "glibc-dns-testing", "2.1.1"}
	configs[Kitten] = Config{list.PromoterE2eRegistry, "kitten", "1.8"}
	configs[Nautilus] = Config{list.PromoterE2eRegistry, "nautilus", "1.8"}
	configs[Nginx] = Config{list.PromoterE2eRegistry, "nginx", "1.27.0-2"}
	configs[NginxNew] = Config{list.PromoterE2eRegistry, "nginx", "1.28.0-2"}
	configs[Nonewprivs] = Config{list.PromoterE2eRegistry, "nonewprivs", "1.4"}
	configs[NonRoot] = Config{list.PromoterE2eRegistry, "nonroot", "1.5"}
	configs[Pause] = Config{list.GcRegistry, "pause", "3.10.2"}
	return configs
}
"""


def test_the_suites_image_names_come_from_its_manifest():
    refs = e2e_images.parse_manifest(MANIFEST)
    assert refs["Agnhost"] == "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
    assert refs["AgnhostPrivate"] == "gcr.io/k8s-authenticated-test/agnhost:2.6"
    assert refs["Etcd"] == "registry.k8s.io/etcd:3.7.0-0"
    assert e2e_images.etcd_version(refs) == "3.7.0"
    assert e2e_images.split_reference(refs["Pause"]) == ("registry.k8s.io", "pause", "3.10.2")
    assert e2e_images.split_reference(refs["BusyBox"]) == (
        "registry.k8s.io",
        "e2e-test-images/busybox",
        "1.37.0-2",
    )


def test_a_manifest_without_an_image_the_lab_makes_is_refused():
    with pytest.raises(LabError, match="Kitten"):
        e2e_images.parse_manifest(MANIFEST.replace("configs[Kitten]", "configs[Puppy]"))
    with pytest.raises(LabError, match="unknown registry field"):
        e2e_images.parse_manifest(MANIFEST.replace("list.GcRegistry", "list.NoRegistry"))


def test_the_kubeconfig_embeds_every_file_it_names():
    files = {"/pki/ca.crt": b"CA", "/pki/admin.crt": b"CERT", "/pki/admin.key": b"KEY"}
    document = {
        "clusters": [
            {
                "name": "lab",
                "cluster": {"server": "https://x", "certificate-authority": "/pki/ca.crt"},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate": "/pki/admin.crt", "client-key": "/pki/admin.key"},
            }
        ],
    }
    embedded = conformance.self_contained(document, files.__getitem__)
    cluster = embedded["clusters"][0]["cluster"]
    user = embedded["users"][0]["user"]
    assert cluster == {"server": "https://x", "certificate-authority-data": "Q0E="}
    assert base64.b64decode(user["client-key-data"]) == b"KEY"
    assert set(user) == {"client-certificate-data", "client-key-data"}
    # The original is left as it was.
    assert document["users"][0]["user"]["client-key"] == "/pki/admin.key"


def test_the_suite_is_a_test_binary_of_the_clusters_kubernetes_with_its_staging_twins():
    recipe = recipes.KUBERNETES_TEST
    assert recipe.pinned_by == "kubernetes"
    (suite,) = [p for p in recipe.programs if p.name == "e2e.test"]
    assert suite.test and suite.package == "k8s.io/kubernetes/test/e2e"
    resolved = recipes.Resolved("1.37.0", "v1.37.0", "abc", "2026-08-26T10:44:20Z")
    assert recipe.local_replacement("k8s.io/sample-apiserver", "./staging/x", resolved) == (
        "v0.37.0"
    )
    argv = build._program_argv("go", suite, "-s -w", "/out/e2e.test")
    assert argv[:5] == ["go", "test", "-c", "-vet=off", "-mod=mod"]
    (agnhost,) = [p for p in recipe.programs if p.name == "agnhost"]
    assert build._program_argv("go", agnhost, "", "/o")[:3] == ["go", "build", "-v"]
    # Only programs that are tests or carry a version file change their part of the key:
    # cached builds of the cluster's components stay valid.
    key = recipes.build_key(recipes.KUBERNETES, resolved, "1.26.8")
    assert ":test=" not in key
    assert ":test=True" in recipes.build_key(recipe, resolved, "1.26.8")


def test_module_tree_paths_escape_upper_case_as_go_does(tmp_path):
    path = build.module_dir(tmp_path, recipes.KUBERNETES, "1.37.0")
    assert path == tmp_path / "go" / "mod" / "k8s.io" / "kubernetes@v1.37.0"
    upper = recipes.Recipe("x", ("github.com/BurntSushi/toml",), (), ())
    assert build.module_dir(tmp_path, upper, "1.0.0").name == "toml@v1.0.0"
    assert "!burnt!sushi" in str(build.module_dir(tmp_path, upper, "1.0.0"))


def test_filters_select_the_conformance_label_and_the_users_focus():
    assert conformance.ginkgo_filters() == ["--label-filter=Conformance"]
    assert conformance.ginkgo_filters("DNS", "Disruptive") == [
        "--label-filter=Conformance",
        "--focus=DNS",
        "--skip=Disruptive",
    ]
    with pytest.raises(LabError, match="not a regular expression"):
        conformance.check_focus("[sig-network")


def test_selected_specs_are_the_its_a_dry_run_would_run():
    report = [
        {
            "SpecReports": [
                {
                    "LeafNodeType": "It",
                    "State": "passed",
                    "ContainerHierarchyTexts": ["[sig-network] DNS"],
                    "LeafNodeText": "should provide DNS for the cluster [Conformance]",
                },
                {"LeafNodeType": "It", "State": "skipped", "LeafNodeText": "filtered out"},
                {"LeafNodeType": "SynchronizedBeforeSuite", "State": "passed"},
            ]
        }
    ]
    assert conformance.specs_in_report(report, ("passed",)) == [
        "[sig-network] DNS should provide DNS for the cluster [Conformance]"
    ]


def test_a_layer_holds_empty_directories_and_keeps_links(tmp_path):
    image = images.Image(
        "registry.k8s.io",
        "e2e-test-images/agnhost",
        "2.66.1",
        {"/agnhost": (b"binary", 0o755), "/usr/local/bin/nnp": (b"x", 0o4755)},
        links={"/agnhost-2": "agnhost"},
        directories={"/uploads": 0o755, "/tmp": 0o1777},
        base=(images.Layer(b"base", "sha256:base"),),
    )
    compressed, _diff_id = images.layer(image)
    with tarfile.open(fileobj=io.BytesIO(compressed)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["uploads"].isdir()
    assert members["tmp"].mode == 0o1777
    assert members["agnhost-2"].issym() and members["agnhost-2"].linkname == "agnhost"
    assert members["usr/local/bin/nnp"].mode == 0o4755
    manifest, blobs = images.blobs(image)
    assert [b.data for b in blobs][1] == b"base"  # the base layer first, then the image's
    assert b'"sha256:base"' not in manifest  # layers are named by their blobs' digests


GINKGO_VERBOSE = """\
------------------------------
• [12.922 seconds]
[sig-network] DNS should provide DNS for the cluster [Conformance] [sig-network, Conformance]
k8s.io/kubernetes@v1.37.0/test/e2e/network/dns.go:50
  STEP: Creating a kubernetes client @ 12/02/26 06:53:05.123
------------------------------
• [FAILED] [301.004 seconds]
[sig-node] Pods should be updated [NodeConformance] [Conformance]
k8s.io/kubernetes@v1.37.0/test/e2e/common/node/pods.go:345
------------------------------
S [SKIPPED] [0.001 seconds]
[sig-storage] something that skips itself [Conformance]
------------------------------
• [TIMEDOUT] [600.000 seconds]

[sig-apps] a slow one [Conformance]
"""


def test_progress_counts_each_finished_spec_and_its_outcome():
    said = []
    progress = conformance.Progress(4, said.append)
    for line in GINKGO_VERBOSE.splitlines(keepends=True):
        progress.feed(line)
    assert (progress.done, progress.failed) == (4, 2)
    assert said[0].startswith("conformance 1/4 (0 failed): passed [sig-network] DNS")
    assert said[1].startswith("conformance 2/4 (1 failed): failed [sig-node] Pods")
    assert said[2].startswith("conformance 3/4 (1 failed): skipped [sig-storage]")
    assert said[3].startswith("conformance 4/4 (2 failed): timedout [sig-apps] a slow one")


JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="6" disabled="0" errors="0" failures="1" time="12.3">
  <testsuite name="Kubernetes e2e suite" package="/" tests="6">
    <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed"/>
    <testcase name="[It] [sig-network] DNS should provide DNS for the cluster [Conformance]"
              classname="Kubernetes e2e suite" status="passed" time="12.9"/>
    <testcase name="[It] [sig-node] Pods should be updated [Conformance]"
              classname="Kubernetes e2e suite" status="failed" time="301">
      <failure message="" type="failed">[FAILED] Timed out after 300s.
Expected
    &lt;string&gt;: /bin/sh: line 1: /file: Read-only file system
to equal
    &lt;string&gt;: /bin/sh: can't create /file: Read-only file system
In [It] at: k8s.io/kubernetes@v1.37.0/test/e2e/common/node/kubelet.go:214 @ 12/02/26</failure>
    </testcase>
    <testcase name="[It] [sig-storage] left out by the filters" status="skipped" time="0">
      <skipped message="skipped"></skipped>
    </testcase>
    <testcase name="[It] [sig-storage] skips itself [Conformance]" status="skipped" time="0.1">
      <skipped message="skipped - Only supported for providers [gce]"></skipped>
    </testcase>
    <testcase name="[ReportAfterSuite] Kubernetes e2e suite report" status="passed"/>
  </testsuite>
</testsuites>
"""


def test_the_junit_report_gives_counts_and_each_failure_with_its_first_line(tmp_path):
    (tmp_path / "junit_01.xml").write_text(JUNIT)
    result = conformance.read_junit(tmp_path / "junit_01.xml")
    assert (result.passed, result.failed, result.skipped) == (1, 1, 1)
    assert result.passed_specs == [
        "[sig-network] DNS should provide DNS for the cluster [Conformance]"
    ]
    assert result.failures == [
        (
            "[sig-node] Pods should be updated [Conformance]",
            "[FAILED] Timed out after 300s. Expected <string>: /bin/sh: line 1: /file: "
            "Read-only file system to equal <string>: /bin/sh: can't create /file: Read-only "
            "file system",
        )
    ]
    assert conformance.failure_summary("x " * 300, limit=20) == "x x x x x x x x x..."
    with pytest.raises(LabError, match="no JUnit report"):
        conformance.read_junit(tmp_path / "missing.xml")


def test_the_debian_layer_is_reproducible_and_leaves_out_what_runtimes_provide(tmp_path):
    tree = tmp_path / "tree"
    for path in ("usr/bin/bash", "usr/share/doc/bash/copyright", "dev/null-ish", "etc/passwd"):
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(path)
    (tree / "tmp").mkdir()
    (tree / "tmp" / "leftover").write_text("x")
    (tree / "usr" / "bin" / "sh").symlink_to("bash")
    first = debian_layer.write_layer(tree, tmp_path / "one.tar.gz")
    (tree / "etc" / "passwd").touch()  # a newer mtime: the layer must not change
    second = debian_layer.write_layer(tree, tmp_path / "two.tar.gz")
    assert first == second
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        names = set(tar.getnames())
        assert tar.getmember("usr/bin/sh").linkname == "bash"
        assert {m.mtime for m in tar.getmembers()} == {0}
    assert {"usr/bin/bash", "etc/passwd", "dev", "tmp"} <= names
    assert not {"usr/share/doc/bash/copyright", "dev/null-ish", "tmp/leftover"} & names


def test_the_suites_busybox_version_must_have_a_known_release_source(tmp_path):
    refs = e2e_images.parse_manifest(MANIFEST)
    assert e2e_images.busybox_version(refs) == "1.37.0"
    assert "1.37.0" in busybox.RELEASE_SUITES
    with pytest.raises(LabError, match=r"busybox 1\.99\.0: no Debian suite known to carry it"):
        busybox.source_tarball(tmp_path, "1.99.0", lambda _m: None)
    assert not any(tmp_path.iterdir())  # nothing fetched, nothing written


def test_a_failed_run_keeps_the_journals_of_each_roles_components():
    master = Node(id="m", roles=("master",), ip="198.18.0.11")
    both = Node(id="mw", roles=("master", "worker"), ip="198.18.0.12")
    router = Node(id="r", roles=("router",), ip="198.18.0.31")
    assert conformance.journal_units(master) == [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "etcd",
    ]
    assert conformance.journal_units(both)[-3:] == ["kubelet", "containerd", "calico-felix"]
    assert len(conformance.journal_units(both)) == 7
    assert conformance.journal_units(router) == []


def test_a_spec_that_passed_only_on_a_retry_is_flaky_with_its_first_failure():
    def spec(text, state, attempts, first_failure=None):
        report = {
            "ContainerHierarchyTexts": ["[sig-api-machinery] AdmissionWebhook"],
            "LeafNodeText": text,
            "LeafNodeType": "It",
            "State": state,
            "NumAttempts": attempts,
        }
        if first_failure:
            report["AdditionalFailures"] = [
                {"State": "failed", "Failure": {"Message": first_failure}}
            ]
        return report

    report = [
        {
            "SpecReports": [
                spec("should mutate custom resource", "passed", 2, "failed to delete\n  CRD"),
                spec("should mutate configmap", "passed", 1),
                spec("should deny", "failed", 2, "timed out"),
                {"LeafNodeType": "SynchronizedBeforeSuite", "State": "passed", "NumAttempts": 2},
            ]
        }
    ]
    assert conformance.flaky_specs(report) == [
        (
            "[sig-api-machinery] AdmissionWebhook should mutate custom resource",
            "failed to delete CRD",
        )
    ]
    result = conformance.Result(passed=2, failed=1, flaky=conformance.flaky_specs(report))
    assert ["of which flaky", 1] in conformance.summary_rows(result)
    assert ["of which flaky", 1] not in conformance.summary_rows(conformance.Result(passed=2))


def test_a_report_directory_reads_back_counts_failures_and_flaky_specs(tmp_path):
    (tmp_path / "junit_01.xml").write_text(JUNIT)
    spec = {
        "ContainerHierarchyTexts": ["[sig-network] DNS"],
        "LeafNodeText": "should provide DNS for the cluster [Conformance]",
        "LeafNodeType": "It",
        "State": "passed",
        "NumAttempts": 2,
        "AdditionalFailures": [{"State": "failed", "Failure": {"Message": "timed out"}}],
    }
    (tmp_path / "report.json").write_text(json.dumps([{"SpecReports": [spec]}]))
    result = conformance.read_report(tmp_path)
    assert (result.passed, result.failed, result.skipped) == (1, 1, 1)
    assert result.flaky == [
        ("[sig-network] DNS should provide DNS for the cluster [Conformance]", "timed out")
    ]
    assert result.report_dir == tmp_path
