"""The protobuf and gRPC classes, generated from proto/caravan/v1/*.proto with grpcio-tools
the first time they are needed (into a folder beside this file, never committed), so they
can never drift from the contract."""

import importlib
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "..", "proto"))
OUT = os.path.join(HERE, "_generated")
FILES = ["caravan/v1/exchange.proto", "caravan/v1/trust.proto"]


def generate():
    from grpc_tools import protoc

    os.makedirs(OUT, exist_ok=True)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{PROTO}", f"-I{include}", f"--python_out={OUT}", f"--grpc_python_out={OUT}"]
    if protoc.main(args + [os.path.join(PROTO, f) for f in FILES]) != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {FILES} in {PROTO}")


def load():
    """A namespace with every message and enum value of both files, and the stubs as
    `ExchangeStub` and `TrustAnchorStub`."""
    stale = not os.path.exists(os.path.join(OUT, "caravan", "v1", "exchange_pb2.py")) or any(
        os.path.getmtime(os.path.join(PROTO, f))
        > os.path.getmtime(os.path.join(OUT, f.replace(".proto", "_pb2.py")))
        for f in FILES
    )
    if stale:
        generate()
    if OUT not in sys.path:
        sys.path.insert(0, OUT)
    pb = types.SimpleNamespace()
    for name in ["exchange_pb2", "trust_pb2", "exchange_pb2_grpc", "trust_pb2_grpc"]:
        module = importlib.import_module(f"caravan.v1.{name}")
        for attr in dir(module):
            if not attr.startswith("_"):
                setattr(pb, attr, getattr(module, attr))
    return pb
