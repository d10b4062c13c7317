"""The container images the cluster runs, with their defaults.

Each image is pillar's when given, else upstream's image at the pinned version. An
air-gapped site keeps these names and serves them from its own registry through
``containerd:registry_mirrors``; the lab does exactly that.
"""

# name: (versions: key, upstream's image with {version})
_UPSTREAM = {
    "coredns": ("coredns", "coredns/coredns:{version}"),
    "calico_kube_controllers": ("calico", "calico/kube-controllers:v{version}"),
}


def image(config, name):
    """The image of ``name`` (``coredns``, ``calico_kube_controllers``): pillar
    ``images:<name>``, or upstream's at the pinned version."""
    given = (config.get("images") or {}).get(name)
    if given:
        return given
    version_key, template = _UPSTREAM[name]
    return template.format(version=str(config["versions"][version_key]).lstrip("v"))


def sandbox(config):
    """The pod sandbox (pause) image containerd runs for every pod."""
    return config["containerd"]["sandbox_image"]
