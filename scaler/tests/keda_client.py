"""An independent KEDA stand-in: a Python grpcio client generated from
proto/externalscaler.proto during the test run.

It plays KEDA's call sequence for one ScaledObject trigger: GetMetricSpec,
GetMetrics then IsActive, and one StreamIsActive stream. Every observation is
printed as one JSON line on stdout for the Rust test to judge.

Usage: keda_client.py --addr HOST:PORT --name SO --metadata JSON
                      [--ca PEM --cert PEM --key PEM --server-name NAME]
                      [--stream-timeout SECONDS]
"""
import argparse
import importlib
import json
import os
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc


def emit(**record):
    print(json.dumps(record), flush=True)


def compile_stubs(proto_dir, out_dir):
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            os.path.join(proto_dir, "externalscaler.proto"),
        ]
    )
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    sys.path.insert(0, out_dir)
    return importlib.import_module("externalscaler_pb2"), importlib.import_module(
        "externalscaler_pb2_grpc"
    )


def code_of(error):
    return error.code().name


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--namespace", default="safecity")
    parser.add_argument("--metadata", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument("--stream-timeout", type=float, default=10.0)
    args = parser.parse_args()

    proto_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
    with tempfile.TemporaryDirectory() as out_dir:
        pb2, pb2_grpc = compile_stubs(proto_dir, out_dir)

        if args.ca:
            read = lambda path: open(path, "rb").read() if path else None
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read(args.ca),
                private_key=read(args.key),
                certificate_chain=read(args.cert),
            )
            channel = grpc.secure_channel(
                args.addr,
                credentials,
                options=[("grpc.ssl_target_name_override", args.server_name)],
            )
        else:
            channel = grpc.insecure_channel(args.addr)
        stub = pb2_grpc.ExternalScalerStub(channel)
        ref = pb2.ScaledObjectRef(
            name=args.name, namespace=args.namespace, scalerMetadata=json.loads(args.metadata)
        )

        # One KEDA poll tick: GetMetricSpec, then GetMetrics followed by IsActive.
        try:
            spec = stub.GetMetricSpec(ref, timeout=10)
        except grpc.RpcError as error:
            emit(step="GetMetricSpec", code=code_of(error), message=error.details())
            return
        specs = [
            {"name": s.metricName, "target": s.targetSizeFloat, "target_int": s.targetSize}
            for s in spec.metricSpecs
        ]
        emit(step="GetMetricSpec", code="OK", specs=specs)
        for s in spec.metricSpecs:
            try:
                metrics = stub.GetMetrics(
                    pb2.GetMetricsRequest(scaledObjectRef=ref, metricName=s.metricName), timeout=10
                )
                values = [
                    {"name": v.metricName, "value": v.metricValueFloat, "value_int": v.metricValue}
                    for v in metrics.metricValues
                ]
                emit(step="GetMetrics", code="OK", values=values)
            except grpc.RpcError as error:
                emit(step="GetMetrics", code=code_of(error), message=error.details())
        try:
            active = stub.IsActive(ref, timeout=10)
            emit(step="IsActive", code="OK", result=active.result)
        except grpc.RpcError as error:
            emit(step="IsActive", code=code_of(error), message=error.details())

        # One StreamIsActive stream per ScaledObject, as KEDA's push scaler holds.
        stream = stub.StreamIsActive(ref, timeout=args.stream_timeout)
        opened = time.monotonic()
        emit(step="StreamOpen")
        try:
            for message in stream:
                emit(
                    step="StreamIsActive",
                    result=message.result,
                    elapsed_ms=(time.monotonic() - opened) * 1000.0,
                )
                if message.result:
                    break
        except grpc.RpcError as error:
            emit(step="StreamIsActive", code=code_of(error), message=error.details())
        stream.cancel()
        channel.close()


if __name__ == "__main__":
    main()
