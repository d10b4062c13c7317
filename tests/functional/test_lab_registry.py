"""The lab's image pusher against a real registry (Debian's docker-registry on loopback):
images that share a base layer send it once and mount it into the other repositories, a
second push sends nothing, and what the registry serves back is exactly what was made."""

import hashlib
import json
import re
import subprocess
import time
import urllib.request

import pytest
import yaml

from kubesalt_lab import images, registry
from kubesalt_lab.local_etcd import free_ports


@pytest.fixture
def registry_url(tmp_path):
    if not registry.PROGRAM.exists():
        pytest.fail(f"{registry.PROGRAM} is missing (make setup installs docker-registry)")
    (port,) = free_ports(1)
    config = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    (tmp_path / "registry.yml").write_text(yaml.safe_dump(config))
    log = open(tmp_path / "registry.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(registry.PROGRAM), "serve", str(tmp_path / "registry.yml")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url, tmp_path / "registry.log"
    finally:
        proc.kill()
        proc.wait()
        log.close()


def _get(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read()


def test_a_shared_base_layer_is_sent_once_and_served_whole_from_every_repository(registry_url):
    url, log_path = registry_url
    base = images.Layer(
        *images.layer(images.Image("x", "base", "1", {"/etc/base": (b"b" * 4096, 0o644)}))
    )
    made = [
        images.Image(
            "registry.k8s.io",
            f"e2e/{name}",
            "1",
            {f"/{name}": (name.encode(), 0o755)},
            base=(base,),
        )
        for name in ("first", "second", "third")
    ]
    known = {}
    for image in made:
        assert registry.push(url, image, known)[1] is True
    assert all(registry.push(url, image, known)[1] is False for image in made)

    said = log_path.read_text()
    base_digest = "sha256:" + hashlib.sha256(base.compressed).hexdigest()
    quoted = base_digest.replace(":", "%3A")
    # The base went up once (to the first repository) and was mounted into the others.
    assert len(re.findall(rf'"PUT /v2/e2e/\w+/blobs/uploads/\S*digest={quoted} ', said)) == 1
    assert (
        len(
            re.findall(
                rf'"POST /v2/e2e/\w+/blobs/uploads/\?mount={quoted}&from=e2e%2Ffirst [^"]*" 201',
                said,
            )
        )
        == 2
    )

    for image in made:
        manifest = json.loads(
            _get(f"{url}/v2/{image.repository}/manifests/1", images.MEDIA_MANIFEST)
        )
        layers = manifest["layers"]
        assert layers[0]["digest"] == base_digest
        for entry in [manifest["config"], *layers]:
            blob = _get(f"{url}/v2/{image.repository}/blobs/{entry['digest']}")
            assert "sha256:" + hashlib.sha256(blob).hexdigest() == entry["digest"]


def test_a_kept_layer_is_reused_and_the_image_is_the_same_as_one_made_without(
    registry_url, tmp_path
):
    url, _log_path = registry_url
    image = images.Image("registry.k8s.io", "e2e/kept", "1", {"/kept": (b"k" * 8192, 0o644)})
    cache = tmp_path / "layers"
    fresh = images.blobs(image)
    assert images.blobs(image, cache) == fresh  # made, and kept
    (kept,) = cache.iterdir()
    _manifest, (_config, layer) = fresh
    assert kept.read_bytes() == layer.data
    assert kept.name == images.layer(image)[1].removeprefix("sha256:") + ".tar.gz"
    # What is kept is what is sent: a changed file under that name is pushed as it is.
    kept.write_bytes(b"kept")
    (_config, reused) = images.blobs(image, cache)[1]
    assert reused.data == b"kept"
    kept.unlink()
    assert registry.push(url, image, layer_cache=cache) == (images._sha(fresh[0]), True)
    served = _get(f"{url}/v2/e2e/kept/blobs/{layer.digest}")
    assert served == layer.data == kept.read_bytes()
