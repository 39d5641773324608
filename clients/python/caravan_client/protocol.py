"""Caravan's signed structures, as docs/protocol.md defines them: DSSE PAE, key ids, and the
checks a participant makes on what it receives. No networking here.

The protobuf classes are generated from proto/caravan/v1/*.proto by `stubs.load()`.
"""

import hashlib
import time
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

HEADER = "application/vnd.caravan.header.v1+protobuf"
RECEIPT = "application/vnd.caravan.receipt.v1+protobuf"
ACK = "application/vnd.caravan.ack.v1+protobuf"
TRUST_LIST = "application/vnd.caravan.trustlist.v1+protobuf"


class Refused(Exception):
    """Something received breaks a rule: `code` is Caravan's refusal code for it."""

    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def pae(payload_type, body):
    """DSSE v1 pre-authentication encoding: the bytes a signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d " % (len(t), t, len(body)) + body


def key_id(raw_public_key):
    """The first 8 bytes of SHA-256 over the raw 32-byte public key, as 16 lowercase hex."""
    return hashlib.sha256(raw_public_key).digest()[:8].hex()


def raw(public_key):
    return public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def load_signing_key(path):
    """A PKCS#8 PEM ed25519 key file, as `caravan-spoke keygen` writes it."""
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an ed25519 key")
    return key


def sign(pb, key, payload_type, body):
    """A `Signature` message over PAE(payload_type, body)."""
    return pb.Signature(
        key_id=key_id(raw(key.public_key())), signature=key.sign(pae(payload_type, body))
    )


def verify(public_key_raw, payload_type, body, signature):
    try:
        Ed25519PublicKey.from_public_bytes(public_key_raw).verify(
            signature, pae(payload_type, body)
        )
        return True
    except InvalidSignature:
        return False


def now_ms():
    return int(time.time() * 1000)


def uuid7():
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, version, random bits."""
    ms = now_ms()
    rand = int.from_bytes(uuid.uuid4().bytes, "big")
    value = (ms << 80) | (rand & ((1 << 80) - 1))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant 10
    return str(uuid.UUID(int=value))


class Trust:
    """A trust list whose signature verified with the pinned anchor key."""

    def __init__(self, pb, signed, anchor_raw):
        if signed.signature.key_id != key_id(anchor_raw) or not verify(
            anchor_raw, TRUST_LIST, signed.body, signed.signature.signature
        ):
            raise Refused("INVALID_TRUST_LIST", "the trust list is not signed by the anchor")
        self.list = pb.TrustList.FromString(signed.body)
        self.keys = {k.key_id: k for k in self.list.keys}
        self.hub_keys = {k.key_id: k for k in self.list.hub_keys}

    def signer(self, kid, participant, document_type, at_ms):
        """The participant's key `kid`, valid at `at_ms` and allowed for `document_type`."""
        k = self.keys.get(kid)
        if k is None:
            raise Refused("UNKNOWN_KEY", f"key {kid} is not in the trust list")
        if k.participant != participant:
            raise Refused("SENDER_MISMATCH", f"key {kid} belongs to {k.participant}")
        if k.revoked_at_ms and k.revoked_at_ms <= at_ms:
            raise Refused("KEY_REVOKED", f"key {kid} was revoked")
        if k.not_before_ms and at_ms < k.not_before_ms:
            raise Refused("KEY_NOT_YET_VALID", f"key {kid} is not yet valid")
        if k.not_after_ms and at_ms > k.not_after_ms:
            raise Refused("KEY_EXPIRED", f"key {kid} has expired")
        if document_type is not None and document_type not in k.document_types:
            raise Refused("DOCUMENT_TYPE_NOT_ALLOWED", f"key {kid} may not sign {document_type}")
        return k

    def receipt(self, pb, signed):
        """A hub receipt whose signature verified with a hub key of the list: its body."""
        hub = self.hub_keys.get(signed.signature.key_id)
        if hub is None or not verify(
            hub.public_key, RECEIPT, signed.body, signed.signature.signature
        ):
            raise Refused("BAD_RECEIPT", "the receipt is not signed by a hub key of the trust list")
        body = pb.ReceiptBody.FromString(signed.body)
        if body.key_id != signed.signature.key_id:
            raise Refused("BAD_RECEIPT", "the receipt names another key than its signature")
        return body


def seal(pb, key, sender, recipient, document_type, document_id, content_type, payload):
    """An envelope: the header, signed, with the payload."""
    header = pb.Header(
        message_id=uuid7(),
        sender=sender,
        recipient=recipient,
        document_type=document_type,
        document_id=document_id,
        content_type=content_type,
        payload_sha256=hashlib.sha256(payload).digest(),
        payload_length=len(payload),
        created_at_ms=now_ms(),
        key_id=key_id(raw(key.public_key())),
    ).SerializeToString()
    return pb.Envelope(header=header, signature=sign(pb, key, HEADER, header), payload=payload)


def accepted_after_list(pb, trust, signed_receipt):
    """Whether the hub accepted a document after `trust`'s list was issued: then a key the list
    does not know (yet) may be in a newer one, which a receiver must look for before it refuses
    UNKNOWN_KEY or KEY_NOT_YET_VALID (docs/protocol.md section 7, a list behind the hub's)."""
    try:
        return trust.receipt(pb, signed_receipt).accepted_at_ms > trust.list.issued_at_ms
    except Refused:
        return False


def open_delivery(pb, trust, me, envelope, signed_receipt):
    """Verify a delivered document end to end, as a receiving participant must: the hub's
    receipt, the sender's signature with a key valid when the hub accepted it, the recipient,
    the payload. Returns (header, receipt body); raises Refused naming the broken rule."""
    receipt = trust.receipt(pb, signed_receipt)
    header_bytes = envelope.header
    if hashlib.sha256(header_bytes).digest() != receipt.header_sha256:
        raise Refused("BAD_RECEIPT", "the receipt is for another header")
    try:
        header = pb.Header.FromString(header_bytes)
    except Exception as e:  # noqa: BLE001 - any decoding failure is the same refusal
        raise Refused("MALFORMED_HEADER", f"the header does not decode: {e}") from e
    if (header.message_id, header.sender, header.recipient) != (
        receipt.message_id,
        receipt.sender,
        receipt.recipient,
    ):
        raise Refused("BAD_RECEIPT", "the receipt names another message")
    if header.recipient != me:
        raise Refused("WRONG_RECIPIENT", f"addressed to {header.recipient}")
    if header.key_id != envelope.signature.key_id:
        raise Refused("INVALID_HEADER", "the header names another key than its signature")
    k = trust.signer(header.key_id, header.sender, header.document_type, receipt.accepted_at_ms)
    if not verify(k.public_key, HEADER, header_bytes, envelope.signature.signature):
        raise Refused("BAD_SIGNATURE", "the header signature does not verify")
    if len(envelope.payload) != header.payload_length:
        raise Refused("PAYLOAD_LENGTH_MISMATCH", "the payload is not as long as the header says")
    if hashlib.sha256(envelope.payload).digest() != header.payload_sha256:
        raise Refused("PAYLOAD_HASH_MISMATCH", "the payload is not the one the header signs")
    return header, receipt


def acknowledgement(pb, key, me, envelope, header, refused=None):
    """The signed acknowledgement of a delivered document: accepted, or rejected with the
    refusal's code (Caravan's, or a namespaced business code) and text."""
    body = pb.AckBody(
        message_id=header.message_id,
        sender=header.sender,
        recipient=me,
        header_sha256=hashlib.sha256(envelope.header).digest(),
        outcome=pb.ACK_OUTCOME_REJECTED if refused else pb.ACK_OUTCOME_ACCEPTED,
        reason_code=refused.code if refused else "",
        reason=refused.detail if refused else "",
        acknowledged_at_ms=now_ms(),
        key_id=key_id(raw(key.public_key())),
    ).SerializeToString()
    return pb.SignedAck(body=body, signature=sign(pb, key, ACK, body))
