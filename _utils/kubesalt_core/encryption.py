"""Secrets encrypted at rest: the key set the CA host keeps, the apiservers'
EncryptionConfiguration made from it, the sealing that carries it to a master, and what a
value read raw from etcd says about the key that wrote it.

The key set is an ordered list of 32-byte keys, each ``write`` (exactly one: new Secrets
are encrypted with it), ``staged`` (every apiserver can read with it; the next to write)
or ``old`` (kept for reading until every Secret is rewritten). A rotation is
:func:`stage`, every apiserver restarted, :func:`promote`, every apiserver restarted,
every Secret rewritten, :func:`retire`, every apiserver restarted
(``kubesalt.orch.encryption_key_rotate``).

The set travels from the CA host to a master sealed to a key the master made for that one
request (X25519, HKDF-SHA256, AES-256-GCM): Salt's job cache and event bus, which see the
answer, see only ciphertext.

No Salt dunders and no I/O here.
"""

import base64
import binascii
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import kubesalt_core.pillar_checks as check

# What kubesalt writes with: aescbc and secretbox take 32-byte keys; identity stores
# Secrets as they are. (aesgcm needs a new key every 200,000 writes; kms a plugin.)
PROVIDERS = ("aescbc", "secretbox", "identity")
KEY_PROVIDERS = ("aescbc", "secretbox")
KEY_BYTES = 32
STATES = ("write", "staged", "old")
# The etcd keys Secrets live under (the apiserver's default storage prefix).
SECRETS_PREFIX = "/registry/secrets/"
_HKDF_INFO = b"kubesalt encryption keys"


def provider(value, key):
    if value not in PROVIDERS:
        unsupported = " (kubesalt does not support it)" if isinstance(value, str) and value else ""
        return None, [
            check.Problem(key, f"{value!r} is not one of: {', '.join(PROVIDERS)}{unsupported}")
        ]
    return value, []


def key_problem(value):
    """Why ``value`` is not a key (base64 of exactly 32 bytes), or None."""
    if not isinstance(value, str):
        return f"expected base64 of {KEY_BYTES} random bytes, got {check.kind_of(value)}"
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "is not base64"
    if len(raw) != KEY_BYTES:
        return f"is {len(raw)} bytes once decoded; expected {KEY_BYTES}"
    return None


def new_key(name, secret=None):
    """A key entry named ``name`` (random unless ``secret``, base64, is given), staged."""
    secret = secret or base64.b64encode(os.urandom(KEY_BYTES)).decode()
    return {"name": name, "secret": secret, "state": "staged"}


def first_set(name):
    """The key set of a cluster that has none yet: one key, writing."""
    return [{**new_key(name), "state": "write"}]


def ordered(keys):
    """The set in the order the apiservers get it: the write key, staged, then old."""
    rank = {state: i for i, state in enumerate(STATES)}
    return sorted(keys, key=lambda k: rank[k["state"]])


def names(keys):
    return [k["name"] for k in ordered(keys)]


def stage(keys, entry):
    """``(set, staged entry)``: ``entry`` added as staged, unless a staged key is already
    there (a rotation stopped half-way), which is kept and returned."""
    for k in keys:
        if k["state"] == "staged":
            return list(keys), k
    if entry["name"] in {k["name"] for k in keys}:
        raise ValueError(f"a key named {entry['name']!r} exists")
    return [*keys, {**entry, "state": "staged"}], entry


def promote(keys):
    """``(set, promoted name or None)``: the staged key writes, the writing one turns old."""
    staged = [k for k in keys if k["state"] == "staged"]
    if not staged:
        return list(keys), None
    name = staged[0]["name"]
    result = []
    for k in keys:
        if k["name"] == name:
            result.append({**k, "state": "write"})
        elif k["state"] == "write":
            result.append({**k, "state": "old"})
        else:
            result.append(dict(k))
    return result, name


def retire(keys):
    """``(set, removed names)``: the old keys dropped."""
    return [dict(k) for k in keys if k["state"] != "old"], [
        k["name"] for k in keys if k["state"] == "old"
    ]


def configuration(chosen, keys):
    """The EncryptionConfiguration (apiserver.config.k8s.io/v1) for Secrets: ``chosen``
    writes; every other provider follows so that whatever was stored before (plain, or
    with the other cipher) stays readable."""
    entries = [{"name": k["name"], "secret": k["secret"]} for k in ordered(keys)]
    providers = {p: {"keys": entries} for p in KEY_PROVIDERS}
    order = [chosen, *(p for p in PROVIDERS if p != chosen)]
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {p: {}} if p == "identity" else {p: providers[p]}
                    for p in order
                    if p == "identity" or entries
                ],
            }
        ],
    }


def configured(document):
    """``(provider that writes, key names in order)`` of an EncryptionConfiguration read
    from disk, or ``(None, [])`` when it is not one of kubesalt's."""
    try:
        providers = document["resources"][0]["providers"]
        first = next(iter(providers[0]))
        key_names = []
        for p in providers:
            for name, spec in p.items():
                if name in KEY_PROVIDERS:
                    key_names = [k["name"] for k in spec["keys"]]
        return first, key_names
    except (KeyError, IndexError, TypeError, StopIteration, AttributeError):
        return None, []


def stored_with(value):
    """What wrote a Secret's raw etcd value: ``"aescbc:<key>"``, ``"secretbox:<key>"``, or
    ``"plain"``."""
    if value.startswith(b"k8s:enc:"):
        parts = value.split(b":", 5)
        if len(parts) >= 5:
            return f"{parts[2].decode(errors='replace')}:{parts[4].decode(errors='replace')}"
    return "plain"


_LOADED_METRIC = "apiserver_encryption_config_controller_last_config_info{"


def loaded_hash_in(metrics_text, wanted):
    """Whether an apiserver's /metrics say it runs with the config whose hash is
    ``wanted`` (``sha256:<hex>`` of the file's bytes, as the apiserver writes it)."""
    return any(
        line.startswith(_LOADED_METRIC) and f'hash="{wanted}"' in line
        for line in metrics_text.splitlines()
    )


# --- sealing ----------------------------------------------------------------------------


def request_key():
    """A private key for one request, and its public half (base64) to send."""
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, base64.b64encode(public).decode()


def _aead_key(shared):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(shared)


def seal(document, recipient_b64):
    """``document`` (JSON-able) encrypted to the request key ``recipient_b64``."""
    try:
        recipient = X25519PublicKey.from_public_bytes(base64.b64decode(recipient_b64))
    except (binascii.Error, ValueError) as err:
        raise ValueError("encryption_key must be base64 of an X25519 public key") from err
    ephemeral = X25519PrivateKey.generate()
    nonce = os.urandom(12)
    sealed = AESGCM(_aead_key(ephemeral.exchange(recipient))).encrypt(
        nonce, json.dumps(document).encode(), None
    )
    public = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return {
        "ephemeral": base64.b64encode(public).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "sealed": base64.b64encode(sealed).decode(),
    }


def unseal(answer, private):
    """The document :func:`seal` sealed to ``private``'s public half."""
    ephemeral = X25519PublicKey.from_public_bytes(base64.b64decode(answer["ephemeral"]))
    plain = AESGCM(_aead_key(private.exchange(ephemeral))).decrypt(
        base64.b64decode(answer["nonce"]), base64.b64decode(answer["sealed"]), None
    )
    return json.loads(plain)
