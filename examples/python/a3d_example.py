#!/usr/bin/python3
"""Turns a video into 3D animation files through animate3d-gateway:
upload -> start -> watch -> download.

    A3D_ADDR=127.0.0.1:50051 A3D_API_KEY=... ./a3d_example.py VIDEO OUT_DIR [--formats bvh,fbx]

A3D_PY_STUBS names the directory of the generated stubs (default: build/py of this repository,
made by `cmake --build build --target py_stubs`). Exit status: 0 the outputs are in OUT_DIR,
1 an RPC or download failed, 2 usage, 3 the job itself failed (FAILURE with its error code).

Errors, as the gateway's README maps them:
- RESOURCE_EXHAUSTED (a rate limit) and UNAVAILABLE (upstream or gateway trouble) are retried by
  the channel's service config below; gRPC waits the `grpc-retry-pushback-ms` the gateway sends
  instead of its own backoff.
- UNAUTHENTICATED / PERMISSION_DENIED: the key is wrong or may not write; INVALID_ARGUMENT: the
  message names the field; NOT_FOUND: the job is not this key's team's. Not retried: retrying
  cannot fix them.
- A failed job is not an RPC error: its status says FAILURE with the documented error code.
"""
import argparse
import json
import os
import re
import sys
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
STUBS = os.environ.get("A3D_PY_STUBS") or os.path.join(HERE, "..", "..", "build", "py")
sys.path.insert(0, STUBS)

import grpc  # noqa: E402  (Debian: python3-grpcio)

try:
    from animate3d.v1 import jobs_pb2, jobs_pb2_grpc  # noqa: E402
except ImportError:
    sys.exit("no generated stubs in %s: run `cmake --build build --target py_stubs` or set "
             "A3D_PY_STUBS" % STUBS)

CHUNK_BYTES = 1 << 20          # per UploadVideo message; the gateway takes up to 4 MiB by default
UPLOAD_ATTEMPTS = 5            # our own re-sends of a whole upload (see upload())
WATCH_RECONNECTS = 10          # a watch stream that breaks is opened again this often at most
UNARY_TIMEOUT_S = 60           # per call, retries included
UPLOAD_TIMEOUT_S = 600
JOB_TIMEOUT_S = float(os.environ.get("A3D_JOB_TIMEOUT_S", "3600"))
DOWNLOAD_TIMEOUT_S = 120       # per file

# The retry policy (gRFC A6): at most 5 attempts per call (gRPC's own cap), exponential backoff
# with jitter unless the gateway sends grpc-retry-pushback-ms, which then decides the wait.
# A call is retried only until the gateway has answered with a message; StartJob is safe to retry
# because every start carries an idempotency key. UploadVideo has a config of its own without a
# retry policy: upload() re-sends the whole file itself (why: see there).
SERVICE_CONFIG = {
    "methodConfig": [{
        "name": [{"service": "animate3d.v1.Jobs"}],
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.5s",
            "maxBackoff": "10s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
        },
    }, {
        "name": [{"service": "animate3d.v1.Jobs", "method": "UploadVideo"}],
    }],
}
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)

# What a person can do about an error that reached main().
HINTS = {
    grpc.StatusCode.UNAUTHENTICATED: " (check A3D_API_KEY)",
    grpc.StatusCode.PERMISSION_DENIED: " (the key needs write permission)",
    grpc.StatusCode.UNAVAILABLE: " (gateway or upstream unavailable; the retries ran out)",
    grpc.StatusCode.RESOURCE_EXHAUSTED: " (rate limit; the retries ran out)",
}

EXIT_OK, EXIT_RPC, EXIT_USAGE, EXIT_JOB = 0, 1, 2, 3


def log(msg):
    print(msg, flush=True)


def pushback_ms(err):
    """The delay the gateway asked for (grpc-retry-pushback-ms), or None."""
    for k, v in err.trailing_metadata() or ():
        if k == "grpc-retry-pushback-ms":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def upload(jobs, md, path):
    """UploadVideo: the file name (and size) first, then the bytes in chunks. -> upload URL.

    A refused upload (rate limit, gateway or storage unavailable) is sent again from here, after
    the pushback the gateway asked for, not by the channel: the channel can replay only what it
    still buffers of a streaming call (grpc.per_rpc_retry_buffer_size, 256 KiB), and with gRPC
    1.51 a replay that raced with that limit was seen to send the chunks without the first
    message (the gateway then answers INVALID_ARGUMENT "name is required in the first message")."""
    name = os.path.basename(path)
    size = os.path.getsize(path)

    def messages():
        yield jobs_pb2.UploadVideoRequest(name=name, size=size)
        with open(path, "rb") as f:
            while True:
                chunk = f.read(CHUNK_BYTES)
                if not chunk:
                    return
                yield jobs_pb2.UploadVideoRequest(chunk=chunk)

    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            r = jobs.UploadVideo(messages(), metadata=md, timeout=UPLOAD_TIMEOUT_S)
            log("uploaded %s (%d bytes)" % (name, r.size))
            return r.url
        except grpc.RpcError as e:
            wait = pushback_ms(e)
            if e.code() not in RETRYABLE or attempt == UPLOAD_ATTEMPTS:
                raise
            wait_s = wait / 1000.0 if wait is not None else min(2.0 ** attempt, 10.0)
            log("upload: %s (%s), sending again in %.1f s" % (e.code().name, e.details(), wait_s))
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def start(jobs, md, upload_url, formats):
    """StartJob with an idempotency key: a retried start never runs the job twice. -> rid."""
    req = jobs_pb2.StartJobRequest(upload_url=upload_url,
                                   params=jobs_pb2.Params(formats=formats),
                                   idempotency_key="example-" + uuid.uuid4().hex)
    rid = jobs.StartJob(req, metadata=md, timeout=UNARY_TIMEOUT_S).rid
    log("started job %s" % rid)
    return rid


def watch(jobs, md, rid):
    """WatchStatus until SUCCESS or FAILURE. -> the final JobStatus.

    The channel retries a watch refused at its start; a stream that breaks later (the gateway
    drains, the connection reaches its maximum age) is opened again here."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    reconnects = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("job %s not finished after %.0f s" % (rid, JOB_TIMEOUT_S))
        try:
            for st in jobs.WatchStatus(jobs_pb2.WatchStatusRequest(rids=[rid]), metadata=md,
                                       timeout=left):
                state = jobs_pb2.JobState.Name(st.state)
                if st.position_in_queue > 0:
                    log("%s %s, position %d in the queue" % (rid, state, st.position_in_queue))
                else:
                    log("%s %s %d/%d" % (rid, state, st.step, st.total))
                if st.state in (jobs_pb2.SUCCESS, jobs_pb2.FAILURE):
                    return st
            raise RuntimeError("WatchStatus ended before job %s finished" % rid)
        except grpc.RpcError as e:
            if e.code() not in RETRYABLE or reconnects == WATCH_RECONNECTS:
                raise
            reconnects += 1
            wait = pushback_ms(e)
            wait_s = wait / 1000.0 if wait is not None else 1.0
            log("watch: %s (%s), watching again in %.1f s" % (e.code().name, e.details(), wait_s))
            time.sleep(wait_s)


def job_error_name(code):
    """JOB_ERROR_... for a documented job error code (the enum's values are the codes)."""
    if code in jobs_pb2.JobError.values():
        return jobs_pb2.JobError.Name(code)
    return "an undocumented code"


def safe_name(s):
    """A file name from upstream's group name or format: nothing but A-Z a-z 0-9 . _ -"""
    s = re.sub(r"[^A-Za-z0-9._-]", "_", s).strip(".")
    return s or "output"


def download(jobs, md, rid, out_dir):
    """GetDownloadUrls, then each file from its signed URL. -> the paths written."""
    r = jobs.GetDownloadUrls(jobs_pb2.GetDownloadUrlsRequest(rids=[rid]), metadata=md,
                             timeout=UNARY_TIMEOUT_S)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for link in r.links:
        for group in link.groups:
            for f in group.files:
                path = os.path.join(out_dir, "%s.%s" % (safe_name(group.name), safe_name(f.format)))
                tmp = path + ".part"
                # The URL is signed: it grants access on its own, so it is never printed.
                with urllib.request.urlopen(f.url, timeout=DOWNLOAD_TIMEOUT_S) as resp, \
                        open(tmp, "wb") as out:
                    while True:
                        block = resp.read(1 << 16)
                        if not block:
                            break
                        out.write(block)
                os.replace(tmp, path)
                log("downloaded %s (%d bytes)" % (path, os.path.getsize(path)))
                written.append(path)
    if not written:
        raise RuntimeError("job %s finished without output files" % rid)
    return written


def main():
    ap = argparse.ArgumentParser(description="upload -> start -> watch -> download through "
                                 "animate3d-gateway (A3D_ADDR, A3D_API_KEY)")
    ap.add_argument("video")
    ap.add_argument("out_dir")
    ap.add_argument("--formats", default="bvh,fbx", help="comma-separated (default bvh,fbx)")
    args = ap.parse_args()
    addr = os.environ.get("A3D_ADDR", "127.0.0.1:50051")
    key = os.environ.get("A3D_API_KEY")
    if not key:
        log("A3D_API_KEY is not set (the gateway key of your team)")
        return EXIT_USAGE
    if not os.path.isfile(args.video):
        log("%s: not a file" % args.video)
        return EXIT_USAGE
    md = [("authorization", "Bearer " + key)]
    options = [("grpc.enable_retries", 1),
               ("grpc.service_config", json.dumps(SERVICE_CONFIG))]
    with grpc.insecure_channel(addr, options=options) as channel:
        jobs = jobs_pb2_grpc.JobsStub(channel)
        try:
            url = upload(jobs, md, args.video)
            rid = start(jobs, md, url, [f for f in args.formats.split(",") if f])
            st = watch(jobs, md, rid)
            if st.state == jobs_pb2.FAILURE:
                log("job %s failed: error %d (%s) %s" % (rid, st.error_code,
                                                         job_error_name(st.error_code),
                                                         st.error_message))
                return EXIT_JOB
            download(jobs, md, rid, args.out_dir)
        except grpc.RpcError as e:
            log("error: %s: %s%s" % (e.code().name, e.details(), HINTS.get(e.code(), "")))
            return EXIT_RPC
        except (OSError, RuntimeError, TimeoutError) as e:
            log("error: %s" % e)
            return EXIT_RPC
    log("done: outputs of %s in %s" % (rid, args.out_dir))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
