"""The client's protocol code against the test vectors of docs/protocol.md section 13: the
same keys, PAE, signatures and checks, computed here with Python's own libraries."""

import hashlib
import os
import re
import unittest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from caravan_client import protocol, stubs
from caravan_client.protocol import Refused

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "protocol.md")


def vectors():
    """`label = value` lines of section 13, continuation lines joined."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## 13. Test vectors") :]
    values, label = {}, None
    for line in section.splitlines():
        m = re.match(r"^([a-z_][a-z_.0-9]*) = (.*)$", line)
        if m:
            label = m.group(1)
            values[label] = m.group(2).strip()
        elif label and line.startswith(" ") and line.strip() and "=" not in line:
            values[label] += line.strip()
        else:
            label = None
    return values


V = vectors()
PB = stubs.load()


def key(name):
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(V[f"{name}.seed"]))


class Vectors(unittest.TestCase):
    def test_keys_and_key_files(self):
        for name in ["kz", "cn", "hub", "anchor"]:
            k = key(name)
            self.assertEqual(protocol.raw(k.public_key()).hex(), V[f"{name}.public_key"])
            self.assertEqual(protocol.key_id(bytes.fromhex(V[f"{name}.public_key"])), V[f"{name}.key_id"])
            der = k.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self.assertEqual(der.hex(), V[f"{name}.pkcs8_der"])

    def test_the_trust_list_verifies_with_the_anchor_and_names_the_keys(self):
        body = bytes.fromhex(V["trust_list.body"])
        self.assertTrue(protocol.pae(protocol.TRUST_LIST, body).startswith(V["trust_list.pae_prefix"].encode() + b" "))
        signature = protocol.sign(PB, key("anchor"), protocol.TRUST_LIST, body)
        self.assertEqual(signature.signature.hex(), V["trust_list.signature"])
        signed = PB.SignedTrustList(body=body, signature=signature)
        trust = protocol.Trust(PB, signed, bytes.fromhex(V["anchor.public_key"]))
        self.assertEqual(set(trust.keys), {V["kz.key_id"], V["cn.key_id"]})
        forged = PB.SignedTrustList(body=body, signature=protocol.sign(PB, key("hub"), protocol.TRUST_LIST, body))
        with self.assertRaises(Refused) as refused:
            protocol.Trust(PB, forged, bytes.fromhex(V["anchor.public_key"]))
        self.assertEqual(refused.exception.code, "INVALID_TRUST_LIST")

    def test_header_receipt_and_acknowledgement_signatures(self):
        header = bytes.fromhex(V["header.bytes"])
        self.assertEqual(protocol.pae(protocol.HEADER, header).hex(), V["header.pae"])
        self.assertEqual(protocol.sign(PB, key("kz"), protocol.HEADER, header).signature.hex(), V["header.signature"])
        self.assertEqual(hashlib.sha256(header).hexdigest(), V["header.sha256"])
        decoded = PB.Header.FromString(header)
        self.assertEqual(decoded.message_id, V["header.message_id"])
        self.assertEqual(decoded.payload_sha256.hex(), V["payload.sha256"])
        for name, signer, payload_type in [
            ("receipt", "hub", protocol.RECEIPT),
            ("ack", "cn", protocol.ACK),
            ("ack_rejected", "cn", protocol.ACK),
        ]:
            body = bytes.fromhex(V[f"{name}.body"])
            self.assertEqual(
                protocol.sign(PB, key(signer), payload_type, body).signature.hex(), V[f"{name}.signature"], name
            )

    def test_a_delivery_is_opened_end_to_end_and_each_tampering_refused(self):
        trust = protocol.Trust(
            PB,
            PB.SignedTrustList(
                body=bytes.fromhex(V["trust_list.body"]),
                signature=protocol.sign(PB, key("anchor"), protocol.TRUST_LIST, bytes.fromhex(V["trust_list.body"])),
            ),
            bytes.fromhex(V["anchor.public_key"]),
        )
        envelope = PB.Envelope.FromString(bytes.fromhex(V["envelope.bytes"]))
        receipt_body = bytes.fromhex(V["receipt.body"])
        receipt = PB.SignedReceipt(body=receipt_body, signature=protocol.sign(PB, key("hub"), protocol.RECEIPT, receipt_body))
        header, _ = protocol.open_delivery(PB, trust, "CN", envelope, receipt)
        self.assertEqual(header.document_id, V["header.document_id"])

        def refused(env, rec=receipt, me="CN"):
            with self.assertRaises(Refused) as r:
                protocol.open_delivery(PB, trust, me, env, rec)
            return r.exception.code

        self.assertEqual(refused(envelope, me="UZ"), "WRONG_RECIPIENT")
        tampered = PB.Envelope()
        tampered.CopyFrom(envelope)
        tampered.payload = b"<doc!>"
        self.assertEqual(refused(tampered), "PAYLOAD_HASH_MISMATCH")
        tampered.CopyFrom(envelope)
        tampered.signature.signature = bytes(64)
        self.assertEqual(refused(tampered), "BAD_SIGNATURE")
        forged = PB.SignedReceipt(body=receipt_body, signature=protocol.sign(PB, key("kz"), protocol.RECEIPT, receipt_body))
        self.assertEqual(refused(envelope, rec=forged), "BAD_RECEIPT")

        # Accepted after the list was issued: a newer list may name a key this one lacks.
        accepted = PB.ReceiptBody.FromString(receipt_body).accepted_at_ms
        self.assertGreater(accepted, trust.list.issued_at_ms)
        self.assertTrue(protocol.accepted_after_list(PB, trust, receipt))
        self.assertFalse(protocol.accepted_after_list(PB, trust, forged))
        later = PB.TrustList()
        later.CopyFrom(trust.list)
        later.issued_at_ms = accepted + 1
        body = later.SerializeToString()
        newer = protocol.Trust(
            PB,
            PB.SignedTrustList(body=body, signature=protocol.sign(PB, key("anchor"), protocol.TRUST_LIST, body)),
            bytes.fromhex(V["anchor.public_key"]),
        )
        self.assertFalse(protocol.accepted_after_list(PB, newer, receipt))


if __name__ == "__main__":
    unittest.main()
