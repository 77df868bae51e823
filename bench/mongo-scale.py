#!/usr/bin/env python3
"""Config in MongoDB at scale: how long a gateway takes to load N clients
(default 100,000, each with one token profile) from a real MongoDB-wire
server (nx-27017), what each process holds in memory afterwards, and how
long one client's change then takes to reach the workers.

1. Seeds N client documents straight into MongoDB with pymongo (which
   nx-27017 brings), in batches of 1,000.
2. Starts `portcullis serve` in MongoDB mode (2 workers) and times from
   spawn to /readyz 200 (the whole model read, validated, partitioned and
   applied by every worker), plus the lines the router logs.
3. RSS (VmRSS) of the router and of each worker from /proc.
4. Deactivates one client with replace_one and times until its requests
   get 403; and a request of another client keeps answering 200.
5. Tightens the policy every client shares (1,000/s to 1/s) and times
   until it is in force, while another client sends requests one after
   another: the slowest of those answers is how long a worker stopped
   deciding to take the change in.

Loopback only; every step is bounded by a timeout.
"""
import argparse
import http.client
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, headers=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait(what, seconds, condition):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"timed out after {seconds}s waiting for {what}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="directory with portcullis and portcullis-worker")
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import pymongo  # noqa: E402  (installed with nx-27017)

    work = tempfile.mkdtemp(prefix="portcullis-mongo-scale-")
    mongo_port, port, admin = free_port(), free_port(), free_port()
    nx = subprocess.Popen(
        ["nx-27017", "--data-dir", os.path.join(work, "data"), "-p", str(mongo_port),
         "--pid-file", os.path.join(work, "nx.pid"), "--log-file", os.path.join(work, "nx.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    router = None
    try:
        uri = f"mongodb://127.0.0.1:{mongo_port}"
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=20000)
        client.admin.command("ping")
        db = client.portcullis
        db.collections.insert_one({"_id": "bench", "upstream": {"url": "http://127.0.0.1:9"},
                                   "routes": [{"path_prefix": "/"}]})
        db.policies.insert_one({"_id": "roomy", "rate_limits": [{"limit": 1000, "per": "second"}]})
        token_hash = lambda i: hashlib.sha256(f"pcl_scale-{i}".encode()).hexdigest()  # noqa: E731
        seeded = time.monotonic()
        batch = []
        for i in range(args.clients):
            batch.append({"_id": f"c{i:06d}", "collections": ["bench"], "policy": "roomy",
                          "profiles": [{"id": f"c{i:06d}-t", "auth": {"type": "token", "token_sha256": token_hash(i)}}]})
            if len(batch) == 1000:
                db.clients.insert_many(batch, ordered=False)
                batch = []
        if batch:
            db.clients.insert_many(batch, ordered=False)
        seed_s = time.monotonic() - seeded

        config = os.path.join(work, "portcullis.yaml")
        with open(config, "w") as f:
            f.write(f'server:\n  listen: "127.0.0.1:{port}"\n  admin_listen: "127.0.0.1:{admin}"\n  decision_log: "off"\n')
        env = dict(os.environ, MONGODB_URI=uri)
        log = open(os.path.join(work, "router.log"), "w")
        started = time.monotonic()
        router = subprocess.Popen([os.path.join(args.bin, "portcullis"), "serve", "--config", config,
                                   "--workers", str(args.workers)], stdout=log, stderr=subprocess.STDOUT, env=env)
        wait("/readyz 200", 300, lambda: get(admin, "/readyz")[0] == 200)
        load_s = time.monotonic() - started
        ready = json.loads(get(admin, "/readyz")[1])
        worker_pids = [w["pid"] for w in ready["workers"]]
        router_rss = rss_kib(router.pid)
        worker_rss = [rss_kib(pid) for pid in worker_pids]

        def status(i):
            return get(port, "/x", {"X-Client-ID": f"c{i:06d}", "X-Profile-ID": f"c{i:06d}-t",
                                    "Authorization": f"Bearer pcl_scale-{i}"})[0]
        # The upstream is a closed port: an allowed request is 502, a refused one 401/403.
        before = status(7), status(args.clients - 1)
        # Five changes, one at a time: deactivate, then reactivate, a client.
        changes = []
        for n in range(5):
            target = 7 + n // 2
            doc = db.clients.find_one({"_id": f"c{target:06d}"})
            doc["status"] = "inactive" if n % 2 == 0 else "active"
            want = 403 if n % 2 == 0 else 502
            changed = time.monotonic()
            db.clients.replace_one({"_id": doc["_id"]}, doc)
            wait("the change to reach the worker", 30, lambda: status(target) == want)
            changes.append(time.monotonic() - changed)
        other = status(args.clients - 1)

        # A policy edit, with a client's requests flowing meanwhile.
        slowest, stop = [0.0, 0], threading.Event()

        def stream():
            i = args.clients - 2
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    get(port, "/x", {"X-Client-ID": f"c{i:06d}", "X-Profile-ID": f"c{i:06d}-t",
                                     "Authorization": f"Bearer pcl_scale-{i}"}, timeout=120)
                except OSError:
                    pass  # counted by its time like any answer
                slowest[0] = max(slowest[0], time.monotonic() - sent)
                slowest[1] += 1
        streamer = threading.Thread(target=stream)
        streamer.start()
        try:
            time.sleep(0.5)
            policy_changed = time.monotonic()
            db.policies.update_one({"_id": "roomy"}, {"$set": {"rate_limits": [{"limit": 1, "per": "second"}]}})
            # In force once two back-to-back requests of one client meet a 429.
            wait("the policy change to reach the workers", 120, lambda: [status(20), status(20)][1] == 429)
            policy_s = time.monotonic() - policy_changed
            time.sleep(0.5)
        finally:
            stop.set()
            streamer.join(30)

        print(f"\nPortcullis config from MongoDB (nx-27017), {args.clients:,} clients, {args.workers} workers")
        print(f"{'seed (pymongo insert_many)':<42}{seed_s:>10.1f} s")
        print(f"{'spawn to /readyz 200 (load)':<42}{load_s:>10.2f} s")
        print(f"{'router RSS':<42}{router_rss / 1024:>10.1f} MiB")
        for i, kib in enumerate(worker_rss):
            print(f"{f'worker {i} RSS':<42}{kib / 1024:>10.1f} MiB")
        changes_ms = sorted(c * 1000 for c in changes)
        print(f"{'one client changed → in force (5 changes)':<42}{changes_ms[0]:>6.0f} / {changes_ms[2]:.0f} / {changes_ms[-1]:.0f} ms (min/median/max)")
        print(f"{'requests before (allowed→502 upstream down)':<42}{str(before):>10}")
        print(f"{'another client after the change':<42}{other:>10}")
        print(f"{'policy changed → in force':<42}{policy_s * 1000:>10.0f} ms")
        print(f"{'slowest answer meanwhile (' + str(slowest[1]) + ' requests)':<42}{slowest[0] * 1000:>10.0f} ms")
        with open(os.path.join(work, "router.log")) as f:
            for line in f:
                if "model read" in line or ("config" in line and ("reloaded" in line or "applied" in line)):
                    print("  log:", line.strip()[:160])
    finally:
        if router:
            router.terminate()
            try:
                router.wait(20)
            except subprocess.TimeoutExpired:
                router.kill()
        nx.terminate()
        nx.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
