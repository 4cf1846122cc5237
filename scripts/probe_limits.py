"""Send the requests that used to take the machine, and measure what each does to a running server: its
answer, how far its resident memory rose (peak, from /proc), and how /healthz answered meanwhile.

    python main.py &                                        # the server to probe, on this machine
    python scripts/probe_limits.py --url http://127.0.0.1:7000 --pid $! [--json docs/probe_limits.json]

Prints a table (and writes JSON with --json). Run as the server's user or root: it resets the server's
peak-RSS counter (/proc/PID/clear_refs) before each attack. tests/webserver/api/test_limits.py runs it.
"""
from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

MB = 1024 * 1024


@dataclass
class Probe:
    attack: str
    status: int | str
    rss_rise_mb: float
    healthz_ms: list[float] = field(default_factory=list)

    @property
    def healthz_p50_ms(self) -> float:
        return statistics.median(self.healthz_ms) if self.healthz_ms else float("nan")

    @property
    def healthz_max_ms(self) -> float:
        return max(self.healthz_ms) if self.healthz_ms else float("nan")


def _status_of(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _raw_request(url: str, head: str, body_chunks: Iterator[bytes]) -> int | str:
    """Send a request by hand (headers, then as much of the body as the server takes) and return the
    status it answers; a server that answers early and closes is what the limits should do."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=60) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = sock.recv(4096).decode("latin-1")
        except (ConnectionResetError, TimeoutError) as exc:
            return type(exc).__name__
    return int(answer.split()[1]) if answer.startswith("HTTP/") else f"no answer ({answer[:40]!r})"


def _chunked(total: int, piece: bytes) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        sent += len(piece)
    yield b"0\r\n\r\n"


def declared_huge_json(url: str) -> int | str:
    """A 256 MB JSON body to POST /collections, announced by Content-Length."""
    head = (f"POST /collections HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\n"
            f"Content-Length: {256 * MB}\r\n\r\n")
    return _raw_request(url, head, iter([b'{"name": "x", "pad": "' + b"a" * MB]))


def streamed_huge_json(url: str) -> int | str:
    """A 512 MB JSON body, chunked (no Content-Length): it used to be buffered and parsed whole."""
    head = ("POST /collections HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    return _raw_request(url, head, _chunked(512 * MB, b"[" * (64 * 1024)))


def streamed_huge_upload(url: str) -> int | str:
    """A 2 GB multipart upload, chunked: it used to be spooled to /tmp in full before the 413."""
    boundary = "probeboundary"
    head = (f"POST /collections/images/images HTTP/1.1\r\nHost: probe\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n")
    start = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
             "Content-Type: image/png\r\n\r\n").encode()

    def body() -> Iterator[bytes]:
        yield f"{len(start):x}\r\n".encode() + start + b"\r\n"
        yield from _chunked(2048 * MB, b"\0" * MB)

    return _raw_request(url, head, body())


def _big_pngs(count: int, side: int = 6000) -> list[tuple[str, tuple[str, bytes, str]]]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (40, 90, 160)).save(buffer, format="PNG")
    return [("files", (f"big{i}.png", buffer.getvalue(), "image/png")) for i in range(count)]


def many_big_pngs(url: str) -> int | str:
    """20 PNGs of 6000x6000 (a small request: they compress well); every one was decoded before any
    was checked."""
    return httpx.post(f"{url}/collections/images/images", files=_big_pngs(20), timeout=300).status_code


def a_few_big_pngs(url: str) -> int | str:
    """5 PNGs of 6000x6000, within the pixel budget: accepted, decoded one at a time and reduced."""
    return httpx.post(f"{url}/collections/images/images", files=_big_pngs(5), timeout=300).status_code


ATTACKS: dict[str, Callable[[str], int | str]] = {
    "256 MB JSON, Content-Length": declared_huge_json,
    "512 MB JSON, chunked": streamed_huge_json,
    "2 GB upload, chunked": streamed_huge_upload,
    "20 PNGs of 6000x6000": many_big_pngs,
    "5 PNGs of 6000x6000 (allowed)": a_few_big_pngs,
}


def probe(url: str, pid: int, name: str, attack: Callable[[str], int | str]) -> Probe:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak-RSS counter
    before = _status_of(pid, "VmRSS")
    latencies: list[float] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=30) as client:
            while not done.is_set():
                started = time.perf_counter()
                client.get(f"{url}/healthz")
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        status = attack(url)
    finally:
        done.set()
        poller.join()
    rise = (_status_of(pid, "VmHWM") - before) / MB
    return Probe(name, status, round(rise, 1), latencies)


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def run(url: str, pid: int) -> list[Probe]:
    return [probe(url, pid, name, attack) for name, attack in ATTACKS.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7000")
    parser.add_argument("--pid", type=int, required=True, help="the server process")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = run(args.url.rstrip("/"), args.pid)
    print(f"{'attack':32} {'answer':>8} {'RSS rise MB':>12} {'healthz p50 ms':>15} {'healthz max ms':>15}")
    for r in results:
        print(f"{r.attack:32} {r.status!s:>8} {r.rss_rise_mb:>12.1f} {r.healthz_p50_ms:>15.1f} "
              f"{r.healthz_max_ms:>15.1f}")
    if args.json:
        rows = [{**asdict(r), "healthz_ms": None, "healthz_samples": len(r.healthz_ms),  # none: over too soon
                 "healthz_p50_ms": round(r.healthz_p50_ms, 1) if r.healthz_ms else None,
                 "healthz_max_ms": round(r.healthz_max_ms, 1) if r.healthz_ms else None} for r in results]
        args.json.write_text(json.dumps({"cpu": _cpu_name(), "probes": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
