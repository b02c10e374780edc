"""Load test of the HTTP service: `similar` requests from concurrent clients on loopback, bounded in count and
time.

``soundalike serve --db STORE`` is started in a process of its own on a free 127.0.0.1 port (stopped at the
end); ``--clients`` threads each send ``GET /api/similar?id=RANDOM&count=20`` one after another (a new
connection each, as simple clients do) until ``--requests`` have been sent or ``--seconds`` have passed.
Prints requests per second, p50/p99 latency, errors and the server's peak RSS. With ``--reindex-during``,
``soundalike reindex`` rebuilds the store's index while the clients run (a new generation, which the server
picks up under load); errors are counted either way. With ``--subsonic``, the clients ask the Subsonic API
instead, as a Subsonic app does (``GET /rest/getSonicSimilarTracks?id=...&count=20`` with token authentication
and ``f=json``, the server started with credentials).

    python benchmarks/load.py --db STORE [--clients 8] [--requests 5000] [--seconds 60] [--reindex-during]
                              [--subsonic]
"""

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--reindex-during", action="store_true",
                    help="Run 'soundalike reindex' on the store half-way: a new generation under load.")
    ap.add_argument("--subsonic", action="store_true", help="Ask /rest/getSonicSimilarTracks, as a Subsonic app does.")
    ap.add_argument("--json")
    args = ap.parse_args()
    from soundalike.search.searcher import Searcher

    ids = Searcher(args.db).ids
    port = free_port()
    env = {**os.environ, "SOUNDALIKE_SUBSONIC_USER": "bench", "SOUNDALIKE_SUBSONIC_PASSWORD": "bench-pw"}
    server = subprocess.Popen([sys.executable, "-m", "soundalike.cli", "serve", "--db", args.db, "--port", str(port)],
                              stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/api/info", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("the service did not start: " + server.stderr.read().decode()[-500:])
        if args.subsonic:  # the library's artists and albums are grouped on the first Subsonic request: not timed
            t = time.perf_counter()
            urllib.request.urlopen(f"{url}/rest/ping?u=bench&p=bench-pw&f=json&v=1.16.1&c=load", timeout=600).read()
            urllib.request.urlopen(f"{url}/rest/getSonicSimilarTracks?id={int(ids[0])}&u=bench&p=bench-pw&f=json"
                                   f"&v=1.16.1&c=load", timeout=600).read()
            first_s = round(time.perf_counter() - t, 2)
        lat, errors, sent = [], [], [0]
        lock = threading.Lock()
        deadline = time.perf_counter() + args.seconds

        def client(seed: int) -> None:
            rng = np.random.default_rng(seed)
            while time.perf_counter() < deadline:
                with lock:
                    if sent[0] >= args.requests:
                        return
                    sent[0] += 1
                tid = int(ids[rng.integers(len(ids))])
                salt = f"{rng.integers(1 << 40):x}"
                token = hashlib.md5(("bench-pw" + salt).encode()).hexdigest()
                target = (f"{url}/rest/getSonicSimilarTracks?id={tid}&count={args.count}&u=bench&t={token}&s={salt}"
                          f"&v=1.16.1&c=load&f=json" if args.subsonic else f"{url}/api/similar?id={tid}&count={args.count}")
                t = time.perf_counter()
                try:
                    with urllib.request.urlopen(target, timeout=30) as r:
                        body = json.loads(r.read())
                    if args.subsonic:
                        body = body["subsonic-response"].get("sonicMatch") or body
                    ok = len(body) == args.count
                except (OSError, ValueError) as err:
                    ok, body = False, str(err)
                with lock:
                    (lat if ok else errors).append(time.perf_counter() - t if ok else str(body)[:200])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        reindex = None
        if args.reindex_during:
            time.sleep(min(args.seconds / 2, 5))
            reindex = subprocess.run([sys.executable, "-m", "soundalike.cli", "reindex", "--db", args.db, "--json"],
                                     capture_output=True, text=True)
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        with open(f"/proc/{server.pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    finally:
        server.terminate()
        server.wait(30)
    ms = np.asarray(lat) * 1000
    out = {"api": "subsonic getSonicSimilarTracks" if args.subsonic else "/api/similar", "tracks": int(len(ids)),
           "clients": args.clients, "requests": len(lat) + len(errors), "errors": len(errors),
           "seconds": round(wall, 2), "requests_per_s": round(len(lat) / wall, 1),
           "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
           "server_peak_rss_mb": round(rss), "cores": os.cpu_count()}
    if args.subsonic:
        out["first_request_s"] = first_s  # (grouping the library into artists and albums)
    if reindex is not None:
        out["reindex_during"] = "ok" if reindex.returncode == 0 else reindex.stderr[-300:]
    print(json.dumps(out, indent=1))
    if errors:
        print("first errors:", errors[:3], file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
