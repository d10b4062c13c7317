"""Requests to the cluster's ingress from the router host, and the objects they go to.

What the ingress tests and ``bench/ingress.py`` use: backends that answer with their name
and pod for one path, an Ingress that routes host names and paths to them, a TLS Secret
made here, and HTTP(S) requests sent from the router's own ``python3`` (a real host outside
the cluster, reaching the ingress's address over the routes BGP gave it).

    lab_address = ingress_traffic.address(lab)
    status, body = ingress_traffic.fetch(lab, lab_address, "app.lab.test", "/one")
"""

import base64
import json

from kubesalt_lab import containers, self_signed, workloads

NAMESPACE = "kubesalt-ingress"  # ingress:namespace of the lab's pillar
SERVICE = "kubesalt-ingress"
SELECTOR = "app.kubernetes.io/name=ingress"
ROUTER = "router-1"


def address(lab):
    """The ingress Service's load balancer address (None until Calico gives it one)."""
    service = workloads.get(lab, "service", SERVICE, "-n", NAMESPACE)
    found = service.get("status", {}).get("loadBalancer", {}).get("ingress", [])
    addresses = [entry["ip"] for entry in found if entry.get("ip")]
    return addresses[0] if addresses else None


def backend(name, path, namespace="default", replicas=2):
    """A Deployment answering ``GET <path>`` with ``<name> <pod>`` (its replicas spread
    over the workers, one each), and its Service."""
    server = workloads.http_server(name, replicas=replicas, namespace=namespace)
    container = server["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        "sh",
        "-c",
        f'mkdir -p /www && echo "{name} $HOSTNAME" > /www/{path.strip("/")} && '
        f"exec httpd -f -p {workloads.HTTP_PORT} -h /www",
    ]
    return [server, workloads.service(name, namespace=namespace)]


def ingress(name, host, routes, tls_secret=None, namespace="default"):
    """An Ingress for ``host``: ``routes`` ``{path prefix: service}`` (port 80)."""
    paths = [
        {
            "path": path,
            "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}},
        }
        for path, service in routes.items()
    ]
    spec = {"rules": [{"host": host, "http": {"paths": paths}}]}
    if tls_secret:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def tls_secret(name, host, namespace="default", days=2):
    """A ``kubernetes.io/tls`` Secret with a self-signed certificate for ``host``; returns
    (the Secret, the certificate in PEM, which a client trusts to check the server)."""
    cert_pem, key_pem = self_signed.pair(host, days=days, ca=True)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {
            "tls.crt": base64.b64encode(cert_pem).decode(),
            "tls.key": base64.b64encode(key_pem).decode(),
        },
    }
    return secret, cert_pem.decode()


# Run by the router's python3: one request, its status and body (or the error) as JSON.
_REQUEST = """
import http.client, json, socket, ssl, sys
address, host, path, ca = sys.argv[1:5]
try:
    sock = socket.create_connection((address, 443 if ca else 80), timeout=3)
    if ca:
        context = ssl.create_default_context(cadata=ca if ca != "-" else None)
        if ca == "-":
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=host)
    request = f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\nConnection: close\\r\\n\\r\\n"
    sock.sendall(request.encode())
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read().decode(errors="replace")
    peer = sock.getpeercert() if ca and ca != "-" else None
    subject = dict(x[0] for x in peer["subject"]) if peer else {}
    print(json.dumps({"status": response.status, "body": body, "cn": subject.get("commonName"),
                      "location": response.getheader("Location")}))
except (OSError, ssl.SSLError, http.client.HTTPException) as err:
    print(json.dumps({"status": None, "body": "", "cn": None, "location": None,
                      "error": f"{type(err).__name__}: {err}"}))
"""


def fetch(lab, where, host, path, tls_ca=None):
    """``GET path`` with ``Host: host`` sent from the router to ``where`` (an address):
    over TLS when ``tls_ca`` is given (the PEM that must have signed the server's
    certificate, SNI ``host``; ``"-"``: TLS without checking). Returns a dict: status (None
    when no answer came), body, location (the redirect's target), error, cn (the
    certificate's common name)."""
    router = next(n for n in lab.nodes if n.id == ROUTER)
    argv = ["python3", "-c", _REQUEST, where, host, path, tls_ca or ""]
    proc = containers.inside(lab, router, argv, check=False, timeout=20)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        error = proc.stderr.strip()[-300:]
        return {"status": None, "body": "", "cn": None, "location": None, "error": error}


def rolled_out(lab, timeout=240):
    """Wait until the controllers' DaemonSet has every pod on its current template and
    ready (``kubectl rollout status``); the controllers' pods."""
    workloads.kubectl(
        lab, "rollout", "status", "daemonset", SERVICE, "-n", NAMESPACE, f"--timeout={timeout}s",
        timeout=timeout + 30,
    )  # fmt: skip
    return workloads.pods(lab, SELECTOR, NAMESPACE)
