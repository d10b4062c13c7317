"""The lab's container registry: Debian's docker-registry (the CNCF distribution registry)
on the bridge address, storing under the lab's cache, and a pusher for the lab's images.

The nodes' containerd pulls through it as the mirror of every registry the cluster's images
name (``containerd:registry_mirrors`` in the lab pillar): the air-gapped way.

    registry.start(lab)
    registry.push(registry.url(lab), image)
"""

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from kubesalt_lab import images
from kubesalt_lab.config import LabError
from kubesalt_lab.system import HostDaemon

PORT = 5000
PROGRAM = Path("/usr/bin/docker-registry")


def url(lab):
    return f"http://{lab.bridge_ip}:{PORT}"


def storage_dir(lab):
    return Path(lab.cache_dir) / "registry"


def _config_path(lab):
    return lab.run_dir / "registry.yml"


DAEMON = HostDaemon("registry", "the registry", PORT)


def pid(lab):
    """PID of the lab's running registry, or None (checks it is really ours)."""
    return DAEMON.pid(lab.run_dir, _config_path(lab))


def config(lab):
    """The registry's configuration: filesystem storage in the lab's cache (images survive
    `down`), HTTP on the bridge address only, no auth (the lab's own network)."""
    return {
        "version": 0.1,
        "log": {"level": "warn", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir(lab))},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"{lab.bridge_ip}:{PORT}"},
    }


def start(lab):
    running = pid(lab)
    if running:
        return running
    if not PROGRAM.exists():
        raise LabError(f"{PROGRAM} is missing (make setup installs docker-registry)")
    storage_dir(lab).mkdir(parents=True, exist_ok=True)
    lab.run_dir.mkdir(parents=True, exist_ok=True)
    _config_path(lab).write_text(yaml.safe_dump(config(lab)))
    return DAEMON.start(
        lab.run_dir, [PROGRAM, "serve", _config_path(lab)], lab.bridge_ip, _config_path(lab)
    )


def stop(lab):
    DAEMON.stop(lab.run_dir, _config_path(lab))


# --- the registry's HTTP API (distribution spec v2) -----------------------------------------


def _request(method, address, data=None, headers=None, timeout=60):
    request = urllib.request.Request(address, data=data, headers=headers or {}, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()
    except (urllib.error.URLError, OSError) as err:
        raise LabError(f"registry {address}: {err}") from err


def _has_blob(base, repository, digest):
    status, _, _ = _request("HEAD", f"{base}/v2/{repository}/blobs/{digest}")
    return status == 200


def _upload(base, repository, blob):
    status, headers, body = _request("POST", f"{base}/v2/{repository}/blobs/uploads/")
    if status != 202:
        raise LabError(f"registry refused an upload to {repository}: {status} {body[:200]!r}")
    location = urllib.parse.urljoin(base, headers["Location"])
    joiner = "&" if "?" in location else "?"
    target = f"{location}{joiner}digest={urllib.parse.quote(blob.digest)}"
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(blob.data))}
    status, _, body = _request("PUT", target, blob.data, headers)
    if status != 201:
        raise LabError(f"registry did not take {blob.digest}: {status} {body[:200]!r}")


def manifest_digest(base, repository, tag):
    """The digest the registry holds for ``repository:tag``, or None."""
    headers = {"Accept": images.MEDIA_MANIFEST}
    status, answer, _ = _request("HEAD", f"{base}/v2/{repository}/manifests/{tag}", None, headers)
    return answer.get("Docker-Content-Digest") if status == 200 else None


def _mount(base, repository, digest, source):
    """Ask the registry to link a blob it holds for ``source`` into ``repository`` (no
    upload); True when it did."""
    query = urllib.parse.urlencode({"mount": digest, "from": source})
    status, _, _ = _request("POST", f"{base}/v2/{repository}/blobs/uploads/?{query}")
    return status == 201


def push(base, image, known=None, layer_cache=None):
    """Push ``image`` (blobs the registry lacks, then its manifest). Returns ``(digest,
    pushed)``: ``pushed`` is False when the registry already had exactly this image.

    known
        ``{blob digest: repository}`` of blobs pushed before (filled in here): a layer
        shared by several images is sent once and mounted into the others.
    layer_cache
        Where compressed layers are kept between pushes (:func:`images.layer`).
    """
    known = {} if known is None else known
    manifest, parts = images.blobs(image, layer_cache)
    digest = images._sha(manifest)
    if manifest_digest(base, image.repository, image.tag) == digest:
        return digest, False
    for blob in parts:
        if _has_blob(base, image.repository, blob.digest):
            pass
        elif not (
            blob.digest in known and _mount(base, image.repository, blob.digest, known[blob.digest])
        ):
            _upload(base, image.repository, blob)
        known.setdefault(blob.digest, image.repository)
    status, _, body = _request(
        "PUT",
        f"{base}/v2/{image.repository}/manifests/{image.tag}",
        manifest,
        {"Content-Type": images.MEDIA_MANIFEST},
    )
    if status != 201:
        raise LabError(f"registry refused {image.reference}: {status} {body[:300]!r}")
    return digest, True


def catalogue(base):
    """The repositories the registry holds."""
    status, _, body = _request("GET", f"{base}/v2/_catalog")
    if status != 200:
        raise LabError(f"registry catalogue: {status}")
    return json.loads(body).get("repositories", [])
