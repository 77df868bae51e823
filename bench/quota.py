#!/usr/bin/env python3
"""What shared quotas cost, and how far instances overshoot them.

1. Throughput with quotas off vs on: Portcullis with token auth and a
   never-hit rate limit, against the same plus a never-hit day quota
   shared through a real redis-server (interleaved rounds, same wrk load as
   bench/run.py: 1000 client ids rotated per request). Redis commands per
   1,000 requests come from INFO commandstats, scripts' inner calls included.
2. Overshoot: three Portcullis instances on one redis-server, one client
   with a quota of --quota requests/day, offered 1x, 10x and 100x its quota
   as fast as 12 keep-alive connections (4 per instance, round-robin) can
   send; the table gives the 200s counted and the overshoot.

Loopback only; every run is bounded by its duration or request count.
"""
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Bench, bench_main, free_port, run_line, wait_http, wait_ready  # noqa: E402


class QuotaBench(Bench):
    def __init__(self, args):
        super().__init__(args)
        self.redis_port = free_port()

    def redis_cli(self, *argv):
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), "--raw", *argv],
                              capture_output=True, text=True, timeout=10).stdout

    def redis_commands(self):
        total = 0
        for line in self.redis_cli("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_") and not line.startswith(("cmdstat_info", "cmdstat_config")):
                total += int(line.split(",")[0].split("=")[1])
        return total

    def portcullis(self, name, quota, redis, extra_clients=""):
        port, admin = free_port(), free_port()
        self.ports[name] = port
        clients_yaml = self.clients_yaml()
        quotas = f"\n    quotas: [ {{ limit: {quota}, per: day }} ]" if quota else ""
        config = self.write(f"{name}.yaml", f"""
server:
  listen: "127.0.0.1:{port}"
  admin_listen: "127.0.0.1:{admin}"
  decision_log: "off"
collections:
  - id: bench
    upstream: {{ url: "http://127.0.0.1:{self.ports['upstream']}" }}
    routes: [ {{ path_prefix: / }} ]
policies:
  - id: roomy
    rate_limits: [ {{ limit: 1000000, per: second }} ]{quotas}
  - id: burst
    quotas: [ {{ limit: {self.args.quota}, per: day }} ]
clients:
{clients_yaml}
{extra_clients}
""")
        env = dict(os.environ)
        env.pop("REDIS_URL", None)
        if redis:
            env["REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
        self.start_portcullis(name, config, env=env)
        wait_http(port)
        wait_ready(admin)
        return port

    def run(self):
        up = self.ports["upstream"]
        self.targets = {}
        self.start_upstream()
        self.start("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"])
        wait_http(up)
        deadline = time.time() + 10
        while "PONG" not in self.redis_cli("PING"):
            if time.time() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

        bursts = [1, 10, 100]
        burst_clients = "\n".join(f"""  - id: burst-{k}
    collections: [bench]
    policy: burst
    profiles:
      - id: burst-{k}-anon
        auth: {{ type: none }}""" for k in bursts)
        self.portcullis("quota-off", 0, redis=False)
        self.portcullis("quota-on", 1_000_000_000, redis=True, extra_clients=burst_clients)
        script = self.lua()
        names = ["quota-off", "quota-on"]
        for name in names:
            self.run_wrk(name, self.args.warmup, script)
        results = {n: [] for n in names}
        ops = []
        for rnd in range(self.args.rounds):
            for name in (names if rnd % 2 == 0 else names[::-1]):
                before = self.redis_commands()
                r = self.run_wrk(name, self.args.duration, script)
                if name == "quota-on":
                    r["redis_per_1000"] = (self.redis_commands() - before) * 1000 / max(1, r["requests"])
                    ops.append(r["redis_per_1000"])
                results[name].append(r)
                print(run_line(rnd, name, r, width=10)
                      + (f"  redis {r['redis_per_1000']:.2f}/1000 req" if name == "quota-on" else ""), flush=True)
        med = {n: {k: statistics.median(r[k] for r in rs) for k in ["rps", "p50_us", "p99_us", "cpu_us_per_req"]}
               for n, rs in results.items()}

        # Overshoot: two more instances beside quota-on, same Redis and config.
        ports = [self.ports["quota-on"]]
        for i in (2, 3):
            ports.append(self.portcullis(f"quota-on-{i}", 1_000_000_000, redis=True, extra_clients=burst_clients))
        overshoot = []
        for k in bursts:
            allowed, sent, seconds = self.burst(ports, f"burst-{k}", k * self.args.quota)
            overshoot.append((k, sent, allowed, seconds))
            print(f"overshoot {k:3d}x: {sent} requests in {seconds:.1f}s over 3 instances, {allowed} allowed "
                  f"of {self.args.quota} ({allowed - self.args.quota:+d})", flush=True)

        print()
        print(f"wrk -t{self.args.threads} -c{self.args.connections}, {self.args.clients} clients rotated, "
              f"{self.args.rounds} interleaved rounds x {self.args.duration}s, medians; {os.cpu_count()} CPUs")
        print(f"{'target':10s} {'req/s':>9s} {'p50 ms':>7s} {'p99 ms':>7s} {'CPU us/req':>10s}")
        for n, m in med.items():
            print(f"{n:10s} {m['rps']:9.0f} {m['p50_us'] / 1000:7.2f} {m['p99_us'] / 1000:7.2f} {m['cpu_us_per_req']:10.1f}")
        off, on = med["quota-off"], med["quota-on"]
        print(f"quota on vs off: {100 * (on['rps'] / off['rps'] - 1):+.1f}% req/s, "
              f"{on['cpu_us_per_req'] - off['cpu_us_per_req']:+.1f} CPU us/req; "
              f"Redis commands per 1,000 requests: median {statistics.median(ops):.2f} (rounds: "
              + ", ".join(f"{o:.2f}" for o in ops) + ")")
        print(f"{'offered':>8s} {'requests':>9s} {'allowed':>8s} {'quota':>6s} {'overshoot':>9s}")
        for k, sent, allowed, _ in overshoot:
            print(f"{str(k) + 'x':>8s} {sent:9d} {allowed:8d} {self.args.quota:6d} {allowed - self.args.quota:+9d}")
        self.report_steal(results)

    def burst(self, ports, client, total):
        lock = threading.Lock()
        counts = {"sent": 0, "allowed": 0}
        per_connection = [total // 12 + (1 if i < total % 12 else 0) for i in range(12)]
        headers = {"X-Client-ID": client, "X-Profile-ID": f"{client}-anon", "Host": "bench"}

        def sender(port, n):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            sent = allowed = 0
            for _ in range(n):
                try:
                    conn.request("GET", "/items/1", headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    sent += 1
                    allowed += resp.status == 200
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.close()
            with lock:
                counts["sent"] += sent
                counts["allowed"] += allowed

        start = time.time()
        threads = [threading.Thread(target=sender, args=(ports[i % 3], per_connection[i])) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return counts["allowed"], counts["sent"], time.time() - start


def main():
    def quota_option(parser):
        parser.add_argument("--quota", type=int, default=500, help="the overshoot test's quota (default 500)")
    bench_main(QuotaBench, __doc__, 4, ["nginx", "wrk", "redis-server", "redis-cli"], quota_option)


if __name__ == "__main__":
    main()
