#!/usr/bin/env python3
"""A small Envoy ExternalProcessor written against Envoy's published Python protos
(PyPI `xds-protos`) and `grpcio`: a processor wafload did not write, for interop tests.

It blocks with a 403 `immediate_response` when a marker (case-insensitive) appears in the
request path, a header value or the body (accumulated over STREAMED chunks, so the block
falls on the chunk that completes the marker); otherwise it answers CONTINUE to every
message, response phases included. Prints `LISTENING HOST:PORT` once it serves.
"""
import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2

MARKERS = [b"<script", b"union select", b"../", b"/etc/passwd", b"${jndi:"]


def header_value(h):
    return h.raw_value if h.raw_value else h.value.encode()


class Processor(pb_grpc.ExternalProcessorServicer):
    def __init__(self, markers):
        self.markers = [m.lower() for m in markers]
        self.lock = threading.Lock()
        self.stats = {"streams": 0, "blocked": 0, "messages": 0}

    def count(self, key):
        with self.lock:
            self.stats[key] += 1

    def hit(self, haystacks):
        return any(m in h.lower() for h in haystacks for m in self.markers)

    def block(self, request_id):
        self.count("blocked")
        return pb.ProcessingResponse(
            immediate_response=pb.ImmediateResponse(
                status=http_status_pb2.HttpStatus(code=403),
                body=("blocked by the python processor, id " + request_id).encode(),
                details="python_marker",
            )
        )

    def Process(self, request_iterator, context):
        self.count("streams")
        body = b""
        request_id = ""
        for request in request_iterator:
            self.count("messages")
            kind = request.WhichOneof("request")
            common = pb.CommonResponse()
            if kind == "request_headers":
                hay = []
                for h in request.request_headers.headers.headers:
                    v = header_value(h)
                    if h.key == "x-request-id":
                        request_id = v.decode(errors="replace")
                    if h.key not in (":method", ":scheme"):
                        hay.append(v)
                if self.hit(hay):
                    yield self.block(request_id)
                    return
                yield pb.ProcessingResponse(request_headers=pb.HeadersResponse(response=common))
            elif kind == "request_body":
                body += request.request_body.body
                if self.hit([body]):
                    yield self.block(request_id)
                    return
                yield pb.ProcessingResponse(request_body=pb.BodyResponse(response=common))
            elif kind == "response_headers":
                yield pb.ProcessingResponse(response_headers=pb.HeadersResponse(response=common))
            elif kind == "response_body":
                yield pb.ProcessingResponse(response_body=pb.BodyResponse(response=common))
            elif kind == "request_trailers":
                yield pb.ProcessingResponse(request_trailers=pb.TrailersResponse())
            elif kind == "response_trailers":
                yield pb.ProcessingResponse(response_trailers=pb.TrailersResponse())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    processor = Processor(MARKERS)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    pb_grpc.add_ExternalProcessorServicer_to_server(processor, server)
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        sys.exit(f"cannot listen on {args.host}:{args.port}")
    server.start()
    print(f"LISTENING {args.host}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()
    print(f"python processor: {processor.stats}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
