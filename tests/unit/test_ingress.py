"""The ingress controller kubesalt renders: NGINX's maintained controller by default,
ingress-nginx selectable, image pinned by version, every object valid for the pinned
Kubernetes version."""

import kubernetes_validate
import pytest

import kubesalt_core.ingress
import kubesalt_core.pillar_schema
from kubesalt_lab.pillar import lab_config


def _by_kind(objects):
    return {o["kind"]: o for o in objects}


def test_default_is_nginx_maintained_controller():
    config = lab_config()
    objects = _by_kind(kubesalt_core.ingress.objects(config))
    assert objects["IngressClass"]["spec"]["controller"] == "nginx.org/ingress-controller"
    (container,) = objects["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "nginx/nginx-ingress:5.5.4"
    assert "-enable-custom-resources=false" in container["args"]
    assert "-enable-telemetry-reporting=false" in container["args"]
    assert "-external-service=kubesalt-ingress" in container["args"]
    assert not any(a.startswith("-default-server-tls-secret") for a in container["args"])
    ports = {p["name"]: p["nodePort"] for p in objects["Service"]["spec"]["ports"]}
    assert ports == {"http": 30080, "https": 30443}


def test_the_controller_binds_low_ports_without_any_capability():
    objects = _by_kind(kubesalt_core.ingress.objects(lab_config()))
    pod = objects["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["runAsUser"] == 101
    assert {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"} in pod["securityContext"][
        "sysctls"
    ]


def test_pillar_config_is_the_configmap_and_a_default_tls_secret_is_passed_on():
    config = lab_config()
    config["ingress"] = {
        **config["ingress"],
        "config": {"main-snippets": "load_module modules/ngx_stream_module.so;"},
        "default_tls_secret": "kubesalt-ingress/default-server",
    }
    assert kubesalt_core.pillar_schema.validate(config) == []
    objects = _by_kind(kubesalt_core.ingress.objects(config))
    assert objects["ConfigMap"]["data"] == {
        "main-snippets": "load_module modules/ngx_stream_module.so;"
    }
    (container,) = objects["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    assert "-default-server-tls-secret=kubesalt-ingress/default-server" in container["args"]
    assert kubesalt_core.ingress.referenced_secrets(config) == [
        ("ingress:default_tls_secret", "kubesalt-ingress", "default-server")
    ]
    config["ingress"]["controller"] = "ingress-nginx"
    (container,) = _by_kind(kubesalt_core.ingress.objects(config))["DaemonSet"]["spec"]["template"][
        "spec"
    ]["containers"]
    assert "--default-ssl-certificate=kubesalt-ingress/default-server" in container["args"]


def test_a_missing_or_wrong_tls_secret_is_named_with_its_pillar_key():
    problems = kubesalt_core.ingress.secret_problems
    tls = {"type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}
    assert problems(tls, "ingress:default_tls_secret", "ns", "cert") == []
    (missing,) = problems(None, "ingress:default_tls_secret", "ns", "cert")
    assert missing.startswith("kubesalt:ingress:default_tls_secret: Secret ns/cert does not exist")
    (opaque,) = problems({"type": "Opaque", "data": {"a": "Yg=="}}, "ingress:x", "ns", "cert")
    assert "'Opaque'" in opaque and "kubernetes.io/tls" in opaque


def test_ingress_nginx_stays_selectable_with_its_own_pin():
    config = lab_config()
    config["ingress"] = {**config["ingress"], "controller": "ingress-nginx"}
    objects = _by_kind(kubesalt_core.ingress.objects(config))
    assert objects["IngressClass"]["spec"]["controller"] == "k8s.io/ingress-nginx"
    (container,) = objects["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ingress-nginx/controller:v1.13.3"
    assert "--controller-class=k8s.io/ingress-nginx" in container["args"]


def test_an_image_from_pillar_wins():
    config = lab_config()
    config["ingress"] = {**config["ingress"], "image": "mirror.example/nginx-ingress:5.5.4"}
    objects = _by_kind(kubesalt_core.ingress.objects(config))
    (container,) = objects["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "mirror.example/nginx-ingress:5.5.4"


@pytest.mark.parametrize("controller", kubesalt_core.ingress.CONTROLLERS)
def test_every_object_validates_for_the_pinned_version(controller):
    config = lab_config()
    config["ingress"] = {**config["ingress"], "controller": controller}
    assert kubesalt_core.pillar_schema.validate(config) == []
    objects = kubesalt_core.ingress.objects(config)
    assert objects[0]["kind"] == "Namespace"  # applied before what lives in it
    for obj in objects:
        kubernetes_validate.validate(obj, str(config["versions"]["kubernetes"]), strict=True)


def test_with_a_load_balancer_pool_the_service_gets_an_announced_address():
    config = lab_config()  # network:load_balancer_cidr 198.18.32.0/24
    service = _by_kind(kubesalt_core.ingress.objects(config))["Service"]
    # Only the workers running a controller announce it: the routers send nowhere else.
    assert (service["spec"]["type"], service["spec"]["externalTrafficPolicy"]) == (
        "LoadBalancer",
        "Local",
    )
    assert "annotations" not in service["metadata"]  # Calico's IPAM picks the address
    config["ingress"] = {**config["ingress"], "address": "198.18.32.10"}
    assert kubesalt_core.pillar_schema.validate(config) == []
    service = _by_kind(kubesalt_core.ingress.objects(config))["Service"]
    assert service["metadata"]["annotations"] == {
        "projectcalico.org/loadBalancerIPs": '["198.18.32.10"]'
    }
    kubernetes_validate.validate(service, str(config["versions"]["kubernetes"]), strict=True)
    # Without a pool: a NodePort Service, as before.
    config["network"]["load_balancer_cidr"] = None
    config["ingress"]["address"] = None
    service = _by_kind(kubesalt_core.ingress.objects(config))["Service"]
    assert service["spec"]["type"] == "NodePort" and "externalTrafficPolicy" not in service["spec"]
