"""The node-local apiserver proxy's config, run by the real HAProxy (Debian's) in front of
two TLS servers that stand in for apiservers (mutual TLS, ``/readyz`` as the apiserver
answers it): TLS passes through, a master that stops being ready is skipped and its
connections closed, a reload keeps the connections to the masters that stay, and a config
HAProxy rejects is caught by its own check."""

import datetime
import http.server
import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import kubesalt_core.apiserver_proxy
import kubesalt_core.components
import kubesalt_core.ports
import kubesalt_core.unit
from kubesalt_lab.pillar import lab_config

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
MASTERS = [("master-a", "127.0.0.2"), ("master-b", "127.0.0.3")]


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject, key, issuer, issuer_key, ca=False, ips=(), usage=None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ips:
        names = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path, cert=None, key=None):
    if cert is not None:
        path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        os.chmod(path.with_suffix(".key"), 0o600)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a serving certificate per stand-in apiserver, the proxy's client certificate
    and a client's (kubesalt's layout: ``<name>.crt`` beside ``<name>.key``)."""
    where = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("kubernetes", ca_key, "kubernetes", ca_key, ca=True)
    _write(where / "kubernetes-ca", ca)
    for name, ip in MASTERS:
        key = _key()
        _write(where / name, _cert(name, key, "kubernetes", ca_key, ips=(ip,)), key)
    for name in ("apiserver-proxy", "client"):
        key = _key()
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
        _write(where / name, _cert(name, key, "kubernetes", ca_key, usage=usage), key)
    return where


class _Apiserver:
    """An HTTPS server on ``ip``:6443 that wants a client certificate, answers ``/readyz``
    with 200 while ready (500 when not), and anything else with its name and the client's
    CN, on keep-alive connections."""

    def __init__(self, name, ip, pki):
        self.name, self.ip, self.ready = name, ip, True
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/readyz":
                    status, body = (200, b"ok") if outer.ready else (500, b"not ready")
                else:
                    peer = dict(x[0] for x in self.connection.getpeercert()["subject"])
                    status = 200
                    body = json.dumps({"server": outer.name, "client": peer["commonName"]})
                    body = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki / f"{name}.crt", pki / f"{name}.key")
        context.load_verify_locations(pki / "kubernetes-ca.crt")
        context.verify_mode = ssl.CERT_REQUIRED
        self.server = http.server.ThreadingHTTPServer(
            (ip, kubesalt_core.ports.APISERVER_PORT), Handler, bind_and_activate=False
        )
        self.server.daemon_threads = True
        self.server.allow_reuse_address = True
        self.server.server_bind()
        self.server.server_activate()
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(port):
    return {"apiserver_proxy": {"enabled": None, "port": port}, "cluster": {}}


class _Proxy:
    def __init__(self, where, pki, masters):
        self.port = _free_port()
        self.path = where / "apiserver-proxy.cfg"
        self.pki = pki
        self.write(masters)
        self.proc = subprocess.Popen(
            [HAPROXY, "-Ws", "-f", str(self.path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        _wait(self._listens, 15, "haproxy listening")

    def _listens(self):
        assert self.proc.poll() is None, self.proc.stdout.read()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def write(self, masters):
        self.path.write_text(
            kubesalt_core.apiserver_proxy.config_text(
                _config(self.port),
                masters,
                str(self.pki / "kubernetes-ca.crt"),
                str(self.pki / "apiserver-proxy.crt"),
            )
        )

    def reload(self, masters):
        self.write(masters)
        os.kill(self.proc.pid, signal.SIGUSR2)

    def close(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.communicate()[0]


@pytest.fixture
def apiservers(pki):
    servers = {name: _Apiserver(name, ip, pki) for name, ip in MASTERS}
    yield servers
    for server in servers.values():
        server.close()


@pytest.fixture
def proxy(tmp_path, pki, apiservers):
    running = _Proxy(tmp_path, pki, MASTERS)
    yield running
    log = running.close()
    print(log)


class _Client:
    """One TLS connection through the proxy (the client's own certificate, verified
    against the CA as a kubeconfig would), several requests on it."""

    def __init__(self, pki, port):
        context = ssl.create_default_context(cafile=str(pki / "kubernetes-ca.crt"))
        context.check_hostname = False  # the stand-ins' certificates name their own ips
        context.load_cert_chain(pki / "client.crt", pki / "client.key")
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock = context.wrap_socket(raw)
        self.reader = self.sock.makefile("rb")

    def who(self):
        self.sock.sendall(b"GET /who HTTP/1.1\r\nHost: proxy\r\n\r\n")
        status = self.reader.readline()
        if not status:
            raise ConnectionError("closed by the proxy")
        length = 0
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = self.reader.read(length)
        if not body:
            raise ConnectionError("closed by the proxy")
        return json.loads(body)

    def close(self):
        self.sock.close()


def _ask(pki, port):
    client = _Client(pki, port)
    try:
        return client.who()
    finally:
        client.close()


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


def _both_up(pki, proxy):
    seen = set()
    _wait(lambda: seen.add(_ask(pki, proxy.port)["server"]) or len(seen) == 2, 15, "both used")


def test_connections_pass_through_with_the_clients_own_certificate(pki, proxy):
    _both_up(pki, proxy)
    answer = _ask(pki, proxy.port)
    assert answer["client"] == "client"  # not the proxy's identity: TLS is passed through


def test_a_master_that_is_not_ready_is_skipped_and_its_connections_closed(pki, proxy, apiservers):
    _both_up(pki, proxy)
    held = _Client(pki, proxy.port)
    victim = held.who()["server"]
    apiservers[victim].ready = False
    started = time.monotonic()
    # Its open connection is closed once the checks mark it down...
    with pytest.raises((ConnectionError, OSError, ssl.SSLError)):
        _wait(lambda: not held.who(), 10, "the connection to the unready master closed")
    marked_down = time.monotonic() - started
    assert marked_down < 6, marked_down
    # ...and every new one goes to the other master.
    others = {_ask(pki, proxy.port)["server"] for _ in range(10)}
    assert others == {name for name, _ in MASTERS} - {victim}
    apiservers[victim].ready = True
    _both_up(pki, proxy)


def test_a_reload_keeps_the_connections_to_masters_that_stay(pki, proxy):
    _both_up(pki, proxy)
    held = [_Client(pki, proxy.port) for _ in range(4)]
    by_server = {}
    for client in held:
        by_server.setdefault(client.who()["server"], []).append(client)
    kept = "master-a"
    assert by_server.get(kept), by_server
    proxy.reload([m for m in MASTERS if m[0] == kept])
    time.sleep(2)
    # The connections to the master that stays still answer, through the old process.
    for client in by_server[kept]:
        assert client.who()["server"] == kept
    # New connections go only to the masters of the new config.
    assert {_ask(pki, proxy.port)["server"] for _ in range(8)} == {kept}


def test_haproxys_own_check_rejects_a_config_it_could_not_run(tmp_path, pki):
    good = tmp_path / "good.cfg"
    good.write_text(
        kubesalt_core.apiserver_proxy.config_text(
            _config(6443), MASTERS, str(pki / "kubernetes-ca.crt"), str(pki / "apiserver-proxy.crt")
        )
    )
    # The check the worker's proxy unit renders for its config, with this machine's HAProxy.
    rendered = kubesalt_core.unit.render(lab_config(), "worker-1", "kube-apiserver-proxy")
    (command,) = rendered.checks.values()
    check = [HAPROXY, *shlex.split(command)[1:]]
    assert subprocess.run([*check, str(good)], capture_output=True).returncode == 0
    bad = tmp_path / "bad.cfg"
    bad.write_text(good.read_text().replace(str(pki / "apiserver-proxy.crt"), "/nonexistent.crt"))
    said = subprocess.run([*check, str(bad)], capture_output=True, text=True)
    assert said.returncode != 0
    assert "nonexistent.crt" in said.stdout + said.stderr
