"""Load test for ``gantool serve``: several concurrent clients on loopback, then a table of
median and 95th-percentile latency per kind of request.

    python benchmarks/serve_load.py                      # tiny built-in test models
    python benchmarks/serve_load.py --model a2b.onnx --model dcgan.onnx --clients 8 --requests 400
    python benchmarks/serve_load.py --url http://127.0.0.1:8666   # a server already running
    python benchmarks/serve_load.py --slow-bodies 4      # uploads while 4 bodies trickle in

Without ``--url`` the server runs as a separate ``gantool serve`` process (so client and
server threads do not share one interpreter lock) on a free port, and is stopped at the end.
Exit status 1 if any request failed.

``--slow-bodies N`` measures instead one upload at a time for ``--slow-seconds`` while N
other connections send an upload's headers (``Content-Length: --slow-length``) and then
one byte every 2 s: the latency of the normal uploads, and when the server closed each
slow connection.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def tiny_models(folder: Path) -> list[Path]:
    """The test suite's tiny models: colour inversion (translation) and a linear generator."""
    sys.path.insert(0, str(REPO / "tests"))
    from runtime_helpers import make_generator_model, make_invert_model

    return [
        make_invert_model(folder / "photo2negative.onnx"),
        make_generator_model(folder / "dcgan.onnx", latent_dim=100, size=64, dcgan_input=True),
    ]


def start_server(models: list[Path], provider: str, workers: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "translator.cli", "serve", "--port", "0", "--provider", provider]
    cmd += ["--workers", str(workers)]
    for m in models:
        cmd += ["--model", str(m)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "Serving on http://127.0.0.1:PORT/  (Ctrl+C to stop)"
    if not line.startswith("Serving on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
    return proc, line.split()[2].rstrip("/")


def server_memory(proc: subprocess.Popen) -> tuple[float, float]:
    """(peak RSS, current RSS) of the server process in MiB, from /proc (VmHWM, VmRSS)."""
    fields = {}
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmHWM"], fields["VmRSS"]


def upload_image(size: int) -> bytes:
    from PIL import Image

    try:
        from skimage import data

        image = data.astronaut()
    except ImportError:
        image = (np.random.default_rng(0).random((512, 512, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(image)
    if size != img.width:
        img = img.resize((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


Request = tuple[str, str, str, bytes, dict[str, str]]  # kind, method, path, body, headers


def request_mix(catalogue: dict, image: bytes) -> list[Request]:
    """One round of what a page does: translate an upload, a sample and a sample's faces,
    draw new samples, move a slider, interpolate, list models."""
    mix: list[Request] = [("models", "GET", "/api/models", b"", {})]
    for entry in catalogue["entries"]:
        if entry["kind"] == "translation":
            mid = entry["directions"][0]["id"]
            mix.append(
                ("translate upload", "POST", f"/api/translate/{mid}", image, {"Content-Type": "image/jpeg"})
            )
            mix.append(("translate sample", "POST", f"/api/translate/{mid}?sample=coffee", b"", {}))
            mix.append(("translate faces", "POST", f"/api/translate/{mid}?sample=astronaut&faces=1", b"", {}))
        else:
            mid, dim = entry["model"]["id"], entry["model"]["latent_dim"]
            z = np.random.default_rng(0).standard_normal((2, dim)).round(4).tolist()
            js = {"Content-Type": "application/json"}
            mix.append(
                ("generate 16", "POST", f"/api/generate/{mid}", json.dumps({"count": 16}).encode(), js)
            )
            mix.append(
                ("slider render", "POST", f"/api/generate/{mid}", json.dumps({"latents": z[:1]}).encode(), js)
            )
            body = json.dumps({"interpolate": {"a": z[0], "b": z[1], "steps": 8}}).encode()
            mix.append(("interpolate 8", "POST", f"/api/generate/{mid}", body, js))
    return mix


def connect(url: str, timeout: float) -> http.client.HTTPConnection:
    """A connection to the host and port of ``url``."""
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)


def run_load(url: str, mix: list[Request], clients: int, total: int) -> tuple[dict, list[str], float]:
    results: dict[str, list[float]] = {kind: [] for kind, *_ in mix}
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        conn = connect(url, timeout=60)
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            kind, method, path, body, headers = mix[n % len(mix)]
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=body or None, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if resp.status == 200:
                        results[kind].append(ms)
                    else:
                        errors.append(f"{kind}: HTTP {resp.status} {payload[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = connect(url, timeout=60)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors, time.perf_counter() - start


def print_table(
    results: dict[str, list[float]], errors: list[str], wall: float, out: Callable = print
) -> None:
    rows = [("request", "n", "errors", "median ms", "p95 ms", "max ms")]
    all_ms: list[float] = []
    for kind, ms in results.items():
        errs = sum(1 for e in errors if e.startswith(kind + ":"))
        all_ms += ms
        rows.append(
            (
                kind,
                str(len(ms)),
                str(errs),
                f"{statistics.median(ms):.1f}" if ms else "-",
                f"{percentile(ms, 95):.1f}" if ms else "-",
                f"{max(ms):.1f}" if ms else "-",
            )
        )
    rows.append(
        (
            "all",
            str(len(all_ms)),
            str(len(errors)),
            f"{statistics.median(all_ms):.1f}" if all_ms else "-",
            f"{percentile(all_ms, 95):.1f}" if all_ms else "-",
            f"{max(all_ms):.1f}" if all_ms else "-",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        out("  ".join(cells))
        if i == 0 or i == len(rows) - 2:
            out("  ".join("-" * w for w in widths))
    done = len(all_ms) + len(errors)
    out(f"\n{done} requests in {wall:.1f} s = {done / wall:.1f} requests/s")


class SlowBodies:
    """``count`` connections sending an upload's headers, then a body byte every ``every`` s
    (from a thread); records when the server closed each one."""

    def __init__(self, url: str, count: int, length: int, every: float = 2.0) -> None:
        parts = urlsplit(url)
        head = (f"POST /api/translate/{{model}} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
                f"Content-Type: image/png\r\nContent-Length: {length}\r\n\r\n")
        self.head, self.every, self.start = head, every, time.perf_counter()
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.count = count
        self.closed_after: list[float] = []
        self._stop = threading.Event()

    def open(self, model: str) -> None:
        self.socks = [socket.create_connection(self.address, timeout=10) for _ in range(self.count)]
        for s in self.socks:
            s.sendall(self.head.replace("{model}", model).encode())
        self.start = time.perf_counter()
        threading.Thread(target=self._trickle, daemon=True).start()

    def _trickle(self) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from runtime_helpers import send_unless_closed

        open_socks = list(self.socks)
        while open_socks and not self._stop.wait(self.every):
            for s in list(open_socks):
                if not send_unless_closed(s, b"\0"):
                    open_socks.remove(s)
                    self.closed_after.append(time.perf_counter() - self.start)

    def close(self) -> None:
        self._stop.set()
        for s in self.socks:
            s.close()


def timed_uploads(url: str, model: str, image: bytes, seconds: float,
                  timeout: float) -> tuple[list[float], int]:
    """Uploads one after another for ``seconds``: (latencies in ms, how many timed out)."""
    latencies: list[float] = []
    timeouts = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn = connect(url, timeout)
        t0 = time.perf_counter()
        try:
            conn.request("POST", f"/api/translate/{model}", body=image,
                         headers={"Content-Type": "image/jpeg"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise SystemExit(f"upload failed: HTTP {resp.status}")
            latencies.append((time.perf_counter() - t0) * 1000)
        except TimeoutError:
            timeouts += 1
        finally:
            conn.close()
        time.sleep(0.5)
    return latencies, timeouts


def slow_body_run(url: str, catalogue: dict, args: argparse.Namespace) -> int:
    model = next(e["directions"][0]["id"] for e in catalogue["entries"] if e["kind"] == "translation")
    slow = SlowBodies(url, args.slow_bodies, args.slow_length)
    slow.open(model)
    time.sleep(1.0)  # the slow ones are in, their bodies under way
    try:
        latencies, timeouts = timed_uploads(url, model, upload_image(args.image_size), args.slow_seconds,
                                            args.slow_seconds + 5)
    finally:
        slow.close()
    print(f"{args.slow_bodies} slow bodies (Content-Length {args.slow_length}, a byte every 2 s), "
          f"uploads of a {args.image_size}px JPEG one at a time for {args.slow_seconds:.0f} s, "
          f"server {url}\n")
    if latencies:
        print(f"uploads answered: {len(latencies)}, median {statistics.median(latencies):.1f} ms, "
              f"max {max(latencies):.1f} ms")
    print(f"uploads timed out after {args.slow_seconds + 5:.0f} s: {timeouts}")
    closed = ", ".join(f"{t:.1f}" for t in sorted(slow.closed_after)) or "none"
    print(f"slow connections closed by the server after (s): {closed}")
    return 1 if timeouts else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", action="append", default=[], help="ONNX model (repeat); default: tiny test models"
    )
    parser.add_argument("--url", help="load an already running server instead of starting one")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--requests", type=int, default=400, help="requests in all (default 400)")
    parser.add_argument("--image-size", type=int, default=512, help="uploaded JPEG is this square size")
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--workers", type=int, default=2, help="the server's --workers")
    parser.add_argument("--slow-bodies", type=int, default=0,
                        help="instead of the load: uploads while this many bodies trickle in")
    parser.add_argument("--slow-length", type=int, default=100_000,
                        help="the Content-Length the slow bodies declare (default 100000)")
    parser.add_argument("--slow-seconds", type=float, default=40.0,
                        help="how long to upload while they trickle (default 40)")
    parser.add_argument("--memory", action="store_true",
                        help="also print the server's peak and final RSS (Linux /proc; "
                             "not with --url)")
    args = parser.parse_args(argv)

    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url
        if url is None:
            models = [Path(m) for m in args.model] or tiny_models(Path(tmp))
            proc, url = start_server(models, args.provider, args.workers)
        try:
            conn = connect(url, timeout=30)
            conn.request("GET", "/api/models")
            catalogue = json.loads(conn.getresponse().read())
            conn.close()
            if args.slow_bodies:
                return slow_body_run(url, catalogue, args)
            mix = request_mix(catalogue, upload_image(args.image_size))
            # One untimed round first, so first-use costs (sample decoding) are not counted.
            run_load(url, mix, 1, len(mix))
            results, errors, wall = run_load(url, mix, args.clients, args.requests)
            memory = server_memory(proc) if args.memory and proc is not None else None
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    providers = {
        d.get("provider") for e in catalogue["entries"] for d in e.get("directions", [e.get("model", {})])
    }
    shown = ", ".join(sorted(str(p) for p in providers))
    print(f"{args.clients} clients, {args.requests} requests, server {url}, provider {shown}\n")
    print_table(results, errors, wall)
    if memory is not None:
        print(f"server RSS: peak {memory[0]:.0f} MiB, after the load {memory[1]:.0f} MiB")
    for e in errors[:10]:
        print("error:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
