"""`python -m caravan_client send|receive ...`: a participant of a Caravan network.

  send     sign and submit one document; verify the hub's receipt; print it as JSON
  receive  take delivered documents, verify each end to end, acknowledge it (accepted, or
           rejected with the broken rule), print each as a JSON line

Every command needs the hub's address, the CA certificate, this participant's TLS
certificate and key, its document-signing key, and the hub's anchor public key (base64), whose
signature on the trust list is the root of every other check.
"""

import argparse
import base64
import json
import sys

import grpc

from . import protocol, stubs
from .protocol import Refused


def connect(args):
    def read(path):
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key),
        certificate_chain=read(args.cert),
    )
    options = [
        ("grpc.ssl_target_name_override", args.server_name),
        ("grpc.max_receive_message_length", 2 << 20),
    ]
    return grpc.secure_channel(args.hub, credentials, options)


def trust(pb, channel, anchor):
    signed = pb.TrustAnchorStub(channel).Current(pb.CurrentTrustListRequest(), timeout=10)
    return protocol.Trust(pb, signed, base64.b64decode(anchor))


def send(pb, args):
    channel = connect(args)
    held = trust(pb, channel, args.anchor)
    key = protocol.load_signing_key(args.signing_key)
    with open(args.document, "rb") as f:
        payload = f.read()
    envelope = protocol.seal(
        pb, key, args.me, args.to, args.type, args.document_id, args.content_type, payload
    )
    try:
        answer = pb.ExchangeStub(channel).Submit(pb.SubmitRequest(envelope=envelope), timeout=30)
    except grpc.RpcError as e:
        print(json.dumps({"refused": e.code().name, "detail": e.details()}))
        return 1
    receipt = held.receipt(pb, answer.receipt)
    header = pb.Header.FromString(envelope.header)
    if receipt.message_id != header.message_id:
        raise Refused("BAD_RECEIPT", "the receipt is for another message")
    print(
        json.dumps(
            {
                "message_id": header.message_id,
                "hub_sequence": receipt.hub_sequence,
                "accepted_at_ms": receipt.accepted_at_ms,
                "receipt_key_id": answer.receipt.signature.key_id,
            }
        )
    )
    return 0


def frames(pb, stream):
    """Whole documents from the delivery stream: a document's first frame carries the envelope
    and receipt, later frames of the same cursor carry `continuation` bytes, `complete` ends
    it."""
    current = None
    for frame in stream:
        if frame.HasField("envelope"):
            current = frame
        elif current is not None and frame.cursor == current.cursor:
            current.envelope.payload += frame.continuation
        if current is not None and frame.complete:
            yield current
            current = None


def receive(pb, args):
    channel = connect(args)
    held = trust(pb, channel, args.anchor)
    key = protocol.load_signing_key(args.signing_key)
    exchange = pb.ExchangeStub(channel)
    stream = exchange.Deliveries(pb.DeliveriesRequest(resume_after=0), timeout=args.wait)
    taken = 0
    try:
        for delivery in frames(pb, stream):
            envelope = delivery.envelope
            refused = None
            try:
                header, receipt = protocol.open_delivery(
                    pb, held, args.me, envelope, delivery.receipt
                )
            except Refused as r:
                refused = r
            # A list behind the hub's (docs/protocol.md section 7): a key registered a moment
            # ago. Look for a newer list before refusing; a rejection is final.
            if (
                refused is not None
                and refused.code in ("UNKNOWN_KEY", "KEY_NOT_YET_VALID")
                and protocol.accepted_after_list(pb, held, delivery.receipt)
            ):
                newer = trust(pb, channel, args.anchor)
                if newer.list.version > held.list.version:
                    held = newer
                    try:
                        header, receipt = protocol.open_delivery(
                            pb, held, args.me, envelope, delivery.receipt
                        )
                        refused = None
                    except Refused as again:
                        refused = again
            if refused is not None:
                header = pb.Header.FromString(envelope.header)
            ack = protocol.acknowledgement(pb, key, args.me, envelope, header, refused)
            answer = exchange.Acknowledge(pb.AcknowledgeRequest(ack=ack), timeout=30)
            print(
                json.dumps(
                    {
                        "message_id": header.message_id,
                        "sender": header.sender,
                        "document_type": header.document_type,
                        "document_id": header.document_id,
                        "verified": refused is None,
                        "refusal": refused.code if refused else None,
                        "payload_length": len(envelope.payload),
                        "state": pb.MessageState.Name(answer.state),
                    }
                ),
                flush=True,
            )
            taken += 1
            if taken >= args.count:
                break
    finally:
        stream.cancel()
    return 0 if taken >= args.count else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="caravan_client", description=__doc__.split("\n")[0])
    parser.add_argument("--hub", required=True, help="host:port of the hub")
    parser.add_argument("--server-name", default="localhost", help="the name in the hub's certificate")
    parser.add_argument("--ca", required=True, help="the network's CA certificate (PEM)")
    parser.add_argument("--cert", required=True, help="this participant's TLS certificate (PEM)")
    parser.add_argument("--key", required=True, help="its TLS key (PEM)")
    parser.add_argument("--signing-key", required=True, help="its ed25519 document-signing key (PKCS#8 PEM)")
    parser.add_argument("--anchor", required=True, help="the hub's anchor public key, base64")
    parser.add_argument("--me", required=True, help="this participant's id, e.g. CN")
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("send")
    s.add_argument("--to", required=True)
    s.add_argument("--type", required=True, choices=["e-co", "e-phyto", "e-invoice"])
    s.add_argument("--document-id", required=True)
    s.add_argument("--content-type", default="application/xml")
    s.add_argument("document")
    r = commands.add_parser("receive")
    r.add_argument("--count", type=int, default=1, help="stop after this many documents")
    r.add_argument("--wait", type=float, default=60, help="seconds to wait for them")
    args = parser.parse_args(argv)
    pb = stubs.load()
    try:
        return {"send": send, "receive": receive}[args.command](pb, args)
    except Refused as r:
        print(json.dumps({"refused": r.code, "detail": r.detail}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
