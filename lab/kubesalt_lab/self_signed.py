"""Self-signed certificates for what the lab's tests and benchmarks serve (an admission
webhook, an Ingress's TLS Secret): never for the cluster itself, whose PKI is kubesalt's.

    cert_pem, key_pem = self_signed.pair("app.lab.test", days=2, ca=True)
"""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def pair(dns_name, days=1, ca=False):
    """An ECDSA P-256 key and a certificate for ``dns_name`` (CN and SAN) signed by
    itself, valid from five minutes ago for ``days``; ``ca``: marked as a CA, so a client
    can trust it as its own anchor. Returns (certificate PEM, key PEM) as bytes."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
