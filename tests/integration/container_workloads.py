"""Real container workloads for the container tool tests and benchmarks.

One small image, built locally ``FROM tailops-target:base`` (no registry), runs
``/opt/workload.py MODE``:

* ``serve``            HTTP server on 8080; ``/health`` answers 200 (HEALTHCHECK passes)
* ``serve-unhealthy``  same, but ``/health`` answers 500 (HEALTHCHECK fails)
* ``crash``            logs a few lines, then "Connection refused" to db:5432, exits 1
                       (run it with a restart policy for a crash loop)
* ``errors``           keeps running, logs "No space left on device" errors and one
                       Python traceback (a known error pattern)
* ``oom``              allocates memory until the memory limit kills it
* ``biglog MB``        writes MB megabytes of mixed log lines, then idles
* ``idle``             sleeps

The image tag is keyed on the content (Dockerfile + script + base image id), so a
session reuses an existing build and a changed recipe builds a new tag.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import BASE_IMAGE, SESSION_ID, TEST_LABEL, unique_name

WORKLOAD_REPO = "tailops-test-workload"

WORKLOAD_SCRIPT = r"""
import http.server, os, sys, time, traceback, urllib.request

def log(msg, err=False):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} {msg}", file=sys.stderr if err else sys.stdout, flush=True)

def serve(healthy):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if (healthy or self.path != "/health") else 500
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"ok\n" if code == 200 else b"database unavailable\n")
        def log_message(self, fmt, *args):
            log("INFO http " + (fmt % args))
    log("INFO listening on 0.0.0.0:8080")
    http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()

def probe():
    try:
        urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=2)
    except Exception as exc:
        print(f"health probe failed: {exc}")
        sys.exit(1)
    print("health probe ok")

def crash():
    log("INFO starting worker v1.4.2")
    log("INFO loading configuration from /etc/app/config.yaml")
    log("INFO connecting to database at db:5432")
    log("ERROR could not connect to database at db:5432: [Errno 111] Connection refused", err=True)
    log("FATAL giving up after 1 attempt, exiting", err=True)
    sys.exit(1)

def errors():
    log("INFO cache writer started")
    for i in range(6):
        log(f"INFO request {i} handled in {10 + i} ms")
        log(f"ERROR failed to write /data/cache/item-{i}.bin: [Errno 28] No space left on device", err=True)
    try:
        raise OSError(28, "No space left on device", "/data/cache/item-9.bin")
    except OSError:
        log("ERROR unhandled error in flush loop", err=True)
        traceback.print_exc()
        sys.stderr.flush()
    log("WARN cache disabled until space is freed", err=True)
    while True:
        time.sleep(3600)

def oom():
    chunks = []
    log("INFO building in-memory index")
    while True:
        chunks.append(bytearray(4 * 1024 * 1024))
        log(f"INFO index size {len(chunks) * 4} MiB")

def biglog(megabytes):
    target = int(megabytes * 1024 * 1024)
    written = 0
    i = 0
    lines = [
        "INFO GET /api/items/{i} 200 {ms}ms user={u}",
        "INFO cache hit ratio {r}% over {i} keys",
        "DEBUG worker {u} picked job {i}",
        "WARN slow query took {ms}ms: SELECT * FROM items WHERE id = {i}",
        "ERROR upstream api.internal:8443 returned 502 for job {i}",
        "INFO GET /healthz 200 1ms",
        "ERROR could not connect to cache at redis:6379: Connection refused",
    ]
    out = sys.stdout
    while written < target:
        tpl = lines[i % 7] if i % 50 else lines[6]
        text = "2024-05-01 10:00:00 " + tpl.format(i=i, ms=i % 997, u=i % 13, r=i % 100) + "\n"
        out.write(text)
        written += len(text)
        i += 1
    out.flush()
    log("INFO log burst done")
    while True:
        time.sleep(3600)

mode = sys.argv[1] if len(sys.argv) > 1 else "serve"
if mode == "serve":
    serve(True)
elif mode == "serve-unhealthy":
    serve(False)
elif mode == "probe":
    probe()
elif mode == "crash":
    crash()
elif mode == "errors":
    errors()
elif mode == "oom":
    oom()
elif mode == "biglog":
    biglog(float(sys.argv[2]))
else:
    while True:
        time.sleep(3600)
"""

DOCKERFILE = f"""FROM {BASE_IMAGE}
COPY workload.py /opt/workload.py
EXPOSE 8080
HEALTHCHECK --interval=1s --timeout=3s --retries=2 CMD ["python3", "/opt/workload.py", "probe"]
ENTRYPOINT ["python3", "-u", "/opt/workload.py"]
CMD ["serve"]
"""

# Modes that are not HTTP servers run with the image's health check switched off.
NO_HEALTHCHECK: dict[str, Any] = {"test": ["NONE"]}


def workload_image(client: Any) -> str:
    """Build (once per recipe) and return the workload image tag."""
    import docker.errors

    base_id = client.images.get(BASE_IMAGE).id
    key = hashlib.sha256((DOCKERFILE + WORKLOAD_SCRIPT + base_id).encode()).hexdigest()[:12]
    tag = f"{WORKLOAD_REPO}:{key}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="tailops-workload-") as tmp:
        Path(tmp, "Dockerfile").write_text(DOCKERFILE)
        Path(tmp, "workload.py").write_text(WORKLOAD_SCRIPT)
        client.images.build(path=tmp, tag=tag, rm=True, forcerm=True, pull=False)
    return tag


def run_workload(
    client: Any,
    image: str,
    mode: str,
    *,
    purpose: str,
    args: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
    healthcheck: bool = False,
    health_overrides: dict[str, int] | None = None,
    **kwargs: Any,
) -> Any:
    """Start one workload container (named with unique_name, labelled for session cleanup).

    ``health_overrides`` ({"timeout": s, "retries": n, "interval": s}) replaces the
    image's HEALTHCHECK timings while keeping its probe command.
    """
    all_labels = {TEST_LABEL: SESSION_ID, **(labels or {})}
    if not healthcheck:
        kwargs.setdefault("healthcheck", NO_HEALTHCHECK)
    elif health_overrides:
        seconds = 1_000_000_000
        kwargs["healthcheck"] = {
            "test": ["CMD", "python3", "/opt/workload.py", "probe"],
            "interval": int(health_overrides.get("interval", 1)) * seconds,
            "timeout": int(health_overrides.get("timeout", 3)) * seconds,
            "retries": int(health_overrides.get("retries", 2)),
        }
    return client.containers.run(
        image,
        command=[mode, *args],
        name=unique_name(purpose),
        labels=all_labels,
        detach=True,
        **kwargs,
    )


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def inspect(client: Any, container: Any) -> dict[str, Any]:
    data: dict[str, Any] = client.api.inspect_container(container.id)
    return data


def remove_quietly(client: Any, container: Any) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.DockerException):
        container.remove(force=True, v=True)
