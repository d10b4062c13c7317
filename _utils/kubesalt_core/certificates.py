"""Keys and X.509 certificates: made, signed, read back and judged against the
catalogue (:mod:`kubesalt_core.pki`). The CA side builds a certificate from the catalogue
and the requester's minion id alone: of a CSR it takes nothing but the public key.

No Salt dunders and no I/O here.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import kubesalt_core.pki
from kubesalt_core.errors import SigningRefused

_EKU_OIDS = {
    kubesalt_core.pki.SERVER: ExtendedKeyUsageOID.SERVER_AUTH,
    kubesalt_core.pki.CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH,
}


def new_private_key(key_type="ecdsa-p256"):
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type in ("rsa-2048", "rsa-4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(f"Invalid key type {key_type!r}. Valid: ecdsa-p256, rsa-2048, rsa-4096")


def key_type_of(key):
    """``ecdsa-p256``, ``rsa-2048`` ... for a private or public key; None when unsupported."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ecdsa-p256" if isinstance(key.curve, ec.SECP256R1) else None
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"rsa-{key.key_size}"
    return None


def key_pem(private_key):
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key):
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def build_csr(private_key, name):
    """A CSR proving possession of ``private_key``. The CA reads nothing else from it."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(name))
        .sign(private_key, hashes.SHA256())
    )


def _name(common_name, organizations=()):
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(ca=False, server=False, rsa_key=False):
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=server and rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def build_ca(ca_name, private_key, days, now):
    """A self-signed CA certificate for one of CAS."""
    subject = _name(kubesalt_core.pki.CAS[ca_name].common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(private_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(private_key, hashes.SHA256())
    )


def build_certificate(identity, public_key, ca_cert, ca_key, days, now):
    """Sign ``identity`` for ``public_key``. Nothing but the key comes from the requester."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(identity.common_name, identity.organizations))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(server=identity.is_server, rsa_key=isinstance(public_key, rsa.RSAPublicKey)),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([_EKU_OIDS[u] for u in identity.extended_usages]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
    )
    sans = [x509.DNSName(n) for n in identity.dns_names] + [
        x509.IPAddress(ipaddress.ip_address(ip)) for ip in identity.ip_addresses
    ]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def describe(cert):
    """The identity a certificate carries, in the shape of :class:`Identity` fields."""
    subject = cert.subject
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usages = tuple(name for name, oid in _EKU_OIDS.items() if oid in eku)
    except x509.ExtensionNotFound:
        usages = ()
    return {
        "common_name": subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
        "organizations": tuple(
            a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        ),
        "extended_usages": tuple(sorted(usages)),
        "dns_names": tuple(sorted(dns)),
        "ip_addresses": tuple(sorted(ips)),
    }


def _wanted(identity):
    return {
        "common_name": identity.common_name,
        "organizations": tuple(identity.organizations),
        "extended_usages": tuple(sorted(identity.extended_usages)),
        "dns_names": tuple(sorted(identity.dns_names)),
        "ip_addresses": tuple(sorted(str(ipaddress.ip_address(i)) for i in identity.ip_addresses)),
    }


def same_public_key(a, b):
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_bytes(*fmt) == b.public_bytes(*fmt)


def signed_by(cert, ca_cert):
    """True when ``ca_cert`` signed ``cert``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def reissue_reason(identity, cert, public_key, ca_cert, now, renew_before_days):
    """Why ``cert`` must be (re)issued for ``identity``, or None when it is good as it is.

    Reasons, in the order they are checked: missing, not signed by the current CA, does not
    match its key, differs from the catalogue (names the field), expires within
    ``renew_before_days``.
    """
    if cert is None:
        return "missing"
    if not signed_by(cert, ca_cert):
        return "not signed by the current CA"
    if not same_public_key(cert.public_key(), public_key):
        return "does not match its key"
    have, want = describe(cert), _wanted(identity)
    for field in want:
        if have[field] != want[field]:
            return f"{field.replace('_', ' ')} differs from the catalogue"
    left = cert.not_valid_after_utc - now
    if left <= datetime.timedelta(days=renew_before_days):
        return f"expires in {max(left.days, 0)} days (renew within {renew_before_days})"
    return None


def without_ca_plan(identities, held, cas, pki, now):
    """With the CA host silent: ``(waiting, blocked)``, each ``{name: reason}``.

    ``waiting``: certificates that are due (renewal, a changed SAN) but still valid and
    signed by the node's copy of their CA: they keep working until the CA host answers.
    ``blocked``: those the node cannot run with (missing, expired, not signed by the CA it
    trusts), which need the CA host now.

    held
        ``{name: (private key or None, certificate or None)}``.
    """
    waiting, blocked = {}, {}
    for identity in identities:
        key, cert = held[identity.name]
        ca_cert = cas[identity.ca]
        reason, _new_key = certificate_plan(
            identity, key, cert, ca_cert, pki["key_type"], now, pki["renew_before_days"]
        )
        if not reason:
            continue
        usable = (
            key is not None
            and cert is not None
            and cert.not_valid_before_utc <= now < cert.not_valid_after_utc
            and signed_by(cert, ca_cert)
        )
        if usable:
            until = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
            waiting[identity.name] = f"{reason}; valid until {until}"
        else:
            blocked[identity.name] = reason
    return waiting, blocked


def certificate_plan(identity, key, cert, ca_cert, key_type, now, renew_before_days):
    """What to do about one catalogue certificate on its node.

    Returns ``(reason, new_key)``: ``reason`` is None when the certificate is good as it is;
    ``new_key`` says a fresh private key is needed (it is missing, or not the pillar's key
    type). A renewal keeps the existing key. ``ca_cert`` None means the CA does not exist yet
    (it is created on the first signing request).
    """
    if key is None:
        return ("missing" if cert is None else "its key is missing"), True
    have = key_type_of(key)
    if have != key_type:
        return f"key type is {have}, pillar asks for {key_type}", True
    if ca_cert is None:
        return ("missing" if cert is None else "not signed by the current CA"), False
    return reissue_reason(identity, cert, key.public_key(), ca_cert, now, renew_before_days), False


def sign_requests(config, requester, csrs, cas, days, now):
    """Certificates for ``requester`` (an authenticated minion id) from its CSRs.

    ``csrs`` maps catalogue names to CSR objects; ``cas`` maps CA names to ``(cert, key)``.
    Identity, SANs and usages come from the catalogue and pillar for ``requester``; of each
    CSR only its public key is used, after its signature proves the requester holds the key.
    """
    node = (config.get("nodes") or {}).get(requester)
    if not node:
        raise SigningRefused(f"{requester!r} is not a node under kubesalt:nodes")
    identities = {
        i.name: i
        for i in kubesalt_core.pki.node_identities(config, requester, node.get("roles") or [])
    }
    unknown = sorted(set(csrs) - set(identities))
    if unknown:
        raise SigningRefused(
            f"{requester!r} asked for {', '.join(unknown)}, which its roles "
            f"({', '.join(node.get('roles') or [])}) do not hold"
        )
    issued = {}
    for name, csr in sorted(csrs.items()):
        if not csr.is_signature_valid:
            raise SigningRefused(f"the CSR for {name} is not signed by its own key")
        identity = identities[name]
        ca_cert, ca_key = cas[identity.ca]
        issued[name] = build_certificate(identity, csr.public_key(), ca_cert, ca_key, days, now)
    return issued


def days_left(cert, now):
    return (cert.not_valid_after_utc - now).days
