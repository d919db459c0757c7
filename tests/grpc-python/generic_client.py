"""A generic gRPC client, as grpcurl or Postman would be: no stubs from proto/strata.proto, only
the standard health service and server reflection, and messages built from the descriptors the
server sends.

    python generic_client.py 127.0.0.1:7070 [--expect-unauthenticated]

1. grpc.health.v1 Check of the whole server ("") must say SERVING.
2. Reflection (grpc.reflection.v1) lists the services: strata.v1.Broker, strata.v1.Admin and
   grpc.health.v1.Health among them.
3. strata.v1.Broker/Metadata, with request and response types taken from the reflected
   descriptors, must name at least one broker; with --expect-unauthenticated (a server that
   requires credentials, which this client does not send) it must fail with UNAUTHENTICATED
   instead, while steps 1 and 2 still answer.

Prints `generic client ok` and exits 0, or says what went wrong and exits 1.
"""
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

TIMEOUT_SECONDS = 10
REQUIRED_SERVICES = ("strata.v1.Broker", "strata.v1.Admin", "grpc.health.v1.Health")
# grpcio-reflection's client speaks v1alpha; v1 is the same protocol (same messages, same field
# numbers) under another package name, and the one a server is expected to serve.
V1ALPHA_REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/"
V1_REFLECTION = "/grpc.reflection.v1.ServerReflection/"


def fail(message):
    print(f"generic client failed: {message}", file=sys.stderr)
    sys.exit(1)


class _Details(grpc.ClientCallDetails):
    def __init__(self, details, method):
        self.method = method
        self.timeout = TIMEOUT_SECONDS if details.timeout is None else details.timeout
        self.metadata = details.metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = getattr(details, "compression", None)


class ReflectionVersion(grpc.StreamStreamClientInterceptor):
    """Sends grpcio-reflection's v1alpha calls as `version` ("v1" or "v1alpha"), with a deadline."""

    def __init__(self, version):
        self.version = version

    def intercept_stream_stream(self, continuation, details, requests):
        method = details.method
        if isinstance(method, bytes):
            method = method.decode()
        if self.version == "v1" and method.startswith(V1ALPHA_REFLECTION):
            method = V1_REFLECTION + method[len(V1ALPHA_REFLECTION):]
        return continuation(_Details(details, method), requests)


def reflected_services(channel):
    """The services reflection lists, the reflection version that answered, and a descriptor
    database over it. Tries v1 first and falls back to v1alpha only if v1 is not served."""
    errors = []
    for version in ("v1", "v1alpha"):
        database = ProtoReflectionDescriptorDatabase(grpc.intercept_channel(channel, ReflectionVersion(version)))
        try:
            return list(database.get_services()), version, database
        except grpc.RpcError as error:
            errors.append(f"{version}: {error.code()} {error.details()}")
            if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                break
    fail(f"server reflection did not answer: {'; '.join(errors)}")


def main():
    arguments = sys.argv[1:]
    expect_unauthenticated = "--expect-unauthenticated" in arguments
    addresses = [argument for argument in arguments if argument != "--expect-unauthenticated"]
    if len(addresses) != 1 or addresses[0].startswith("-"):
        print("usage: generic_client.py ADDRESS [--expect-unauthenticated]", file=sys.stderr)
        sys.exit(1)
    channel = grpc.insecure_channel(addresses[0])
    try:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT_SECONDS)
    except grpc.FutureTimeoutError:
        fail(f"could not connect to {addresses[0]} within {TIMEOUT_SECONDS} s")

    # 1. Health.
    try:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS
        )
    except grpc.RpcError as error:
        fail(f"health check failed: {error.code()} {error.details()}")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
    print(f"health {status}")
    if health.status != health_pb2.HealthCheckResponse.SERVING:
        fail(f"health is {status}, not SERVING")

    # 2. Reflection.
    services, version, database = reflected_services(channel)
    print(f"reflection grpc.reflection.{version}")
    for service in sorted(services):
        print(f"service {service}")
    missing = [service for service in REQUIRED_SERVICES if service not in services]
    if missing:
        fail(f"reflection does not list {', '.join(missing)}: {sorted(services)}")

    # 3. Broker/Metadata from the reflected descriptors alone.
    try:
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName("strata.v1.Broker").methods_by_name["Metadata"]
    except (KeyError, grpc.RpcError) as error:
        fail(f"no strata.v1.Broker/Metadata in the reflected descriptors: {error!r}")
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    brokers_field = method.output_type.fields_by_name.get("brokers")
    if brokers_field is None or brokers_field.message_type is None:
        fail(f"{method.output_type.full_name} has no message field `brokers`")
    metadata = channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    try:
        response = metadata(request_class(), timeout=TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        if expect_unauthenticated and error.code() == grpc.StatusCode.UNAUTHENTICATED:
            print(f"metadata UNAUTHENTICATED {error.details()}")
        else:
            fail(f"{method.full_name} failed: {error.code()} {error.details()}")
    else:
        if expect_unauthenticated:
            fail(f"{method.full_name} answered without credentials; expected UNAUTHENTICATED")
        brokers = len(response.brokers)
        print(f"metadata brokers {brokers}")
        if brokers < 1:
            fail(f"{method.full_name} names no broker: {response}")
    channel.close()
    print("generic client ok")


if __name__ == "__main__":
    main()
