"""PEM files on disk, read the forgiving way both sides of the PKI need: a file that is
missing, or is not PEM, reads as None (and the second is logged), so that the caller plans
to make it again instead of failing."""

import logging

from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = logging.getLogger(__name__)


def read(path):
    """The bytes of ``path``; None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _parsed(path, parse):
    data = read(path)
    if data is None:
        return None
    try:
        return parse(data)
    except ValueError:
        log.warning("kubesalt: %s is not valid PEM; treating it as missing", path)
        return None


def certificate(path):
    """The X.509 certificate at ``path``, or None."""
    return _parsed(path, x509.load_pem_x509_certificate)


def private_key(path):
    """The unencrypted private key at ``path``, or None."""
    return _parsed(path, lambda data: serialization.load_pem_private_key(data, password=None))
