"""The lab's NGINX Ingress Controller: where its source archive is looked for, what is
refused before any build, and the image made from a packed build."""

import gzip
import io
import tarfile

import pytest

from kubesalt_lab import build, config, images, ingress_controller, lifecycle
from kubesalt_lab.config import LabError


def _packed(tmp_path, names=None):
    sources = tmp_path / "files"
    sources.mkdir()
    members = {}
    for name in names or ["nginx-ingress", *ingress_controller.TEMPLATES, "njs/apikey_auth.js",
                          "LICENSE"]:  # fmt: skip
        path = sources / name.replace("/", "_")
        path.write_text(f"content of {name}")
        members[name] = path
    packed = tmp_path / "nginx-ingress-5.5.4-linux-amd64.tar.gz"
    build.release_archive(packed, members)
    return packed


def _entries(image):
    compressed, _diff = images.layer(image)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(compressed))) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_image_is_upstreams_name_and_the_controller_writes_nginx_config_as_101(tmp_path):
    base = images.Layer(b"base", "sha256:" + "0" * 64)
    image = ingress_controller.image(_packed(tmp_path), "5.5.4", base)
    assert image.reference == "nginx/nginx-ingress:5.5.4"
    assert (image.entrypoint, image.user, image.workdir) == (("/nginx-ingress",), "101", "/")
    assert image.base == (base,)
    entries = _entries(image)
    # Templates sit in the working directory, where the controller opens them by name.
    assert {"nginx.tmpl", "nginx.ingress.tmpl", "nginx-ingress"} <= set(entries)
    assert entries["nginx-ingress"].mode == 0o755
    # Every directory it writes belongs to 101, also when implied by a file inside.
    for directory in ("etc/nginx", "etc/nginx/conf.d", "etc/nginx/secrets", "etc/nginx/njs",
                      "var/lib/nginx", "var/log/nginx", "var/cache/nginx"):  # fmt: skip
        assert (entries[directory].uid, entries[directory].gid) == (101, 0), directory
    assert entries["etc/nginx/njs/apikey_auth.js"].uid == 101
    assert (entries["etc"].uid, entries["var"].uid) == (0, 0)
    assert entries["var/log/nginx/error.log"].linkname == "/dev/stderr"


def test_a_packed_build_without_its_templates_is_refused(tmp_path):
    packed = _packed(tmp_path, names=["nginx-ingress", "LICENSE"])
    base = images.Layer(b"base", "sha256:" + "0" * 64)
    with pytest.raises(LabError, match=r"lacks /nginx.tmpl"):
        ingress_controller.image(packed, "5.5.4", base)


def test_the_archive_is_looked_for_in_the_cache_then_beside_the_repo(tmp_path, monkeypatch):
    monkeypatch.delenv(ingress_controller.ARCHIVE_ENV, raising=False)
    monkeypatch.setattr(ingress_controller, "SHARED_DATA", tmp_path / "nowhere")
    assert ingress_controller.find_archive(tmp_path, "5.5.4") is None
    message = ingress_controller.missing_message(tmp_path, "5.5.4")
    assert f"{tmp_path}/sources/kubernetes-ingress-5.5.4.tar.gz" in message
    assert ingress_controller.SOURCES["5.5.4"].sha256 in message
    placed = tmp_path / "sources" / "kubernetes-ingress-5.5.4.tar.gz"
    placed.parent.mkdir()
    placed.write_bytes(b"x")
    assert ingress_controller.find_archive(tmp_path, "5.5.4") == placed


def test_an_archive_named_by_the_environment_must_be_there(tmp_path, monkeypatch):
    monkeypatch.setenv(ingress_controller.ARCHIVE_ENV, str(tmp_path / "absent.tar.gz"))
    with pytest.raises(LabError, match=r"ARCHIVE=.*absent\.tar\.gz: no such"):
        ingress_controller.find_archive(tmp_path, "5.5.4")


def test_an_unpinned_version_or_a_different_archive_is_refused_before_building(tmp_path):
    with pytest.raises(LabError, match=r"versions:nginx_ingress: 5.9.9 has no pinned source"):
        ingress_controller.find_archive(tmp_path, "5.9.9")
    forged = tmp_path / "kubernetes-ingress-5.5.4.tar.gz"
    forged.write_bytes(b"not the release")
    with pytest.raises(LabError, match="not the pinned source archive"):
        ingress_controller.build_controller(tmp_path, "5.5.4", forged, lambda _m: None)
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize(
    ("name", "kind", "link", "inside"),
    [
        ("kubernetes-ingress-5.5.4/go.mod", tarfile.REGTYPE, "", True),
        ("kubernetes-ingress-5.5.4/../evil", tarfile.REGTYPE, "", False),
        ("/etc/passwd", tarfile.REGTYPE, "", False),
        ("elsewhere/go.mod", tarfile.REGTYPE, "", False),
        ("kubernetes-ingress-5.5.4/link", tarfile.SYMTYPE, "/etc/shadow", False),
        ("kubernetes-ingress-5.5.4/link", tarfile.SYMTYPE, "../x", False),
        ("kubernetes-ingress-5.5.4/dev", tarfile.CHRTYPE, "", False),
    ],
)
def test_only_entries_inside_the_archives_folder_are_unpacked(name, kind, link, inside):
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, link
    assert ingress_controller._inside(member, "kubernetes-ingress-5.5.4") is inside


def test_without_the_archive_up_goes_on_and_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv(ingress_controller.ARCHIVE_ENV, raising=False)
    monkeypatch.setattr(ingress_controller, "SHARED_DATA", tmp_path / "nowhere")
    lab = config.load(cache_dir=tmp_path / "cache", run_dir=tmp_path / "run")
    said = []
    assert lifecycle.build_ingress(lab, said.append) is None
    (message,) = said
    assert f"put it at {tmp_path}/cache/sources/kubernetes-ingress-5.5.4.tar.gz" in message
    assert "the rest of the cluster comes up" in message
