#!/usr/bin/env python3
"""Portcullis against nginx on one machine, in one run.

Targets, all fronting the same upstream (nginx returning a small static
JSON body) and driven by the same wrk load (1000 client ids with their
tokens, rotated per request by a Lua script):

  upstream       the upstream directly (the floor)
  nginx-proxy    nginx as a plain keep-alive reverse proxy
  nginx-keyauth  nginx with an API-key `map` (token -> client id, checked
                 against X-Client-ID) and `limit_req` per client id
  portcullis     Portcullis with token auth and a never-hit rate limit
  portcullis-base  with --baseline DIR: the same, from another build's
                 binaries (an older commit, other flags), for A/B
                 comparisons in one run; left out otherwise

Targets are interleaved round by round (order rotated) because a shared
2-core box drifts by +-20% between minutes. For each target the table
gives the median over rounds of requests/s, p50 and p99 latency, and CPU
microseconds per request of the target's whole process tree (read from
/proc: the steadiest figure when wrk shares the cores), then every ratio
against Portcullis. Everything listens on 127.0.0.1 only; every run is
bounded by --duration.
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(i):
    return f"pcl_bench-client-{i:04d}-not-a-real-token"


def wait_http(port, path="/", headers=None, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            status = http_status(port, path, headers or {})
            if status:
                return status
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout}s")


def http_status(port, path, headers):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        lines = [f"GET {path} HTTP/1.1", "Host: bench", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        parts = data.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 else 0


def wait_ready(admin_port, timeout=60):
    """Until Portcullis' /readyz answers 200 (every worker up with the config)."""
    wait_http(admin_port, "/readyz", timeout=timeout)
    deadline = time.time() + timeout
    while http_status(admin_port, "/readyz", {}) != 200:
        if time.time() > deadline:
            raise RuntimeError("portcullis did not become ready")
        time.sleep(0.05)


def cpu_steal_ticks():
    """(steal, total) ticks of the whole machine from /proc/stat. Steal is
    time the hypervisor gave our vCPUs to someone else: a run with much of
    it measures the host, not the proxies."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    return fields[7], sum(fields)


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (which may hold
    spaces): [0] state, [1] ppid, [11] utime, [12] stime in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    return raw[raw.rindex(")") + 2:].split()


def run_line(rnd, name, r, width=16):
    """One interleaved run as printed by every bench script."""
    return (f"round {rnd + 1} {name:{width}s} {r['rps']:9.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms  "
            f"p99 {r['p99_us'] / 1000:6.2f} ms  {r['cpu_us_per_req']:6.1f} CPU us/req  "
            f"errors {r['errors']} non-2xx {r['non2xx']}  steal {r['steal_pct']:.0f}%")


def tree_cpu_ticks(root_pid):
    """utime+stime of root_pid and all its descendants, in clock ticks."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            rest = proc_stat(entry)
        except OSError:
            continue
        stats[int(entry)] = (int(rest[1]), int(rest[11]) + int(rest[12]))  # ppid, utime+stime
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in stats.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(stats[p][1] for p in tree if p in stats)


# The wrk side every bench script shares: send the pre-formatted requests of
# the Lua table `requests` in turn, and print the summary as one JSON line.
LUA_ROTATE_AND_REPORT = """
local n = #requests
local i = 0
request = function()
  i = i + 1
  if i > n then i = 1 end
  return requests[i]
end
done = function(summary, latency, requests)
  io.write(string.format('{"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""


class Bench:
    def __init__(self, args):
        self.args = args
        self.out = os.path.join(ROOT, "bench", "out", time.strftime("%Y%m%d-%H%M%S"))
        os.makedirs(self.out, exist_ok=True)
        self.procs = []
        self.ports = {name: free_port() for name in ["upstream", "nginx-proxy", "nginx-keyauth", "portcullis", "admin",
                                                      "portcullis-base", "admin-base"]}
        self.clients = [(f"bench-{i:04d}", token(i)) for i in range(args.clients)]
        # Profile ids are "<client><suffix>" in every config and in the load.
        self.profile_suffix = "-token"

    def path(self, name):
        return os.path.join(self.out, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def start(self, name, argv, env=None):
        log = open(self.path(f"{name}.log"), "w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def nginx(self, name, body, workers):
        conf = self.write(f"{name}.conf", f"""
worker_processes {workers};
pid {self.path(name + '.pid')};
error_log {self.path(name + '.err')};
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {self.out};
  proxy_temp_path {self.out};
  fastcgi_temp_path {self.out};
  uwsgi_temp_path {self.out};
  scgi_temp_path {self.out};
  upstream backend {{ server 127.0.0.1:{self.ports['upstream']}; keepalive 128; }}
  {body}
}}
""")
        return self.start(name, ["nginx", "-c", conf, "-e", self.path(name + ".err")])

    def start_upstream(self):
        """The shared upstream: one nginx worker returning a fixed body."""
        self.targets["upstream"] = self.nginx("upstream", f"""
  server {{ listen 127.0.0.1:{self.ports['upstream']}; keepalive_requests 1000000;
    location / {{ default_type application/json; return 200 '{{"ok":true}}'; }} }}""", 1)

    def clients_yaml(self):
        """The bench clients for a Portcullis config: token auth, policy `roomy`."""
        return "\n".join(f"""  - id: {c}
    collections: [bench]
    policy: roomy
    profiles:
      - id: {c}-token
        auth: {{ type: token, token_sha256: "{hashlib.sha256(t.encode()).hexdigest()}" }}""" for c, t in self.clients)

    def setup_targets(self):
        up = self.ports["upstream"]
        self.targets = {}
        self.start_upstream()

        proxy_common = """
      proxy_http_version 1.1;
      proxy_set_header Connection "";"""
        self.targets["nginx-proxy"] = self.nginx("nginx-proxy", f"""
  server {{ listen 127.0.0.1:{self.ports['nginx-proxy']}; keepalive_requests 1000000;
    location / {{ {proxy_common}
      proxy_pass http://backend; }} }}""", "auto")

        # The same job as Portcullis' token auth, nginx style: the bearer
        # token maps to its client id, which must match X-Client-ID; a
        # per-client limit_req that is never hit; Authorization stripped,
        # the consumer id and a request id forwarded.
        entries = "\n".join(f'    "Bearer {t}" "{c}";' for c, t in self.clients)
        self.targets["nginx-keyauth"] = self.nginx("nginx-keyauth", f"""
  map_hash_bucket_size 128;
  map $http_authorization $api_client {{
    default "";
{entries}
  }}
  limit_req_zone $api_client zone=perclient:10m rate=100000r/s;
  server {{ listen 127.0.0.1:{self.ports['nginx-keyauth']}; keepalive_requests 1000000;
    location / {{
      if ($api_client = "") {{ return 401; }}
      if ($api_client != $http_x_client_id) {{ return 403; }}
      limit_req zone=perclient burst=100000 nodelay;
      {proxy_common}
      proxy_set_header Authorization "";
      proxy_set_header X-Consumer-Client-ID $api_client;
      proxy_set_header X-Request-ID $request_id;
      proxy_pass http://backend; }} }}""", "auto")

        self.start_portcullis("portcullis", self.portcullis_config("portcullis", self.clients_yaml()))
        if self.args.baseline:
            config = self.portcullis_config("portcullis-base", self.clients_yaml(), admin="admin-base")
            self.start_portcullis("portcullis-base", config, bin_dir=self.args.baseline)

        wait_http(up)
        for name in ["nginx-proxy", "nginx-keyauth"] + self.portcullis_targets():
            wait_http(self.ports[name])
        wait_ready(self.ports["admin"])
        if self.args.baseline:
            wait_ready(self.ports["admin-base"])

    def portcullis_targets(self):
        return ["portcullis"] + (["portcullis-base"] if self.args.baseline else [])

    def portcullis_config(self, name, clients_yaml, admin="admin"):
        """The Portcullis config of the comparisons: one collection in front
        of the shared upstream, the never-hit policy `roomy`, these clients."""
        return self.write(f"{name}.yaml", f"""
server:
  listen: "127.0.0.1:{self.ports[name]}"
  admin_listen: "127.0.0.1:{self.ports[admin]}"
  decision_log: "off"
collections:
  - id: bench
    upstream: {{ url: "http://127.0.0.1:{self.ports['upstream']}" }}
    routes: [ {{ path_prefix: / }} ]
policies:
  - id: roomy
    rate_limits: [ {{ limit: 1000000, per: second }} ]
clients:
{clients_yaml}
""")

    def start_portcullis(self, name, config, env=None, bin_dir=None):
        argv = [os.path.join(bin_dir or self.args.bin, "portcullis"), "serve", "--config", config]
        if self.args.workers:
            argv += ["--workers", str(self.args.workers)]
        self.targets[name] = self.start(name, argv, env=env)
        return self.targets[name]

    def interleave(self, names, script):
        """Warm-up, then `rounds` rounds over `names` with the order rotated
        each round; prints every run, saves results.json, returns the runs."""
        for name in names:
            self.run_wrk(name, self.args.warmup, script)
        results = {n: [] for n in names}
        for rnd in range(self.args.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for name in order:
                r = self.run_wrk(name, self.args.duration, script)
                results[name].append(r)
                print(run_line(rnd, name, r), flush=True)
        with open(self.path("results.json"), "w") as f:
            json.dump(results, f, indent=2)
        return results

    def check_same_job(self):
        """Each auth target must accept a good token and refuse a bad one."""
        c, t = self.clients[7]
        good = {"X-Client-ID": c, "X-Profile-ID": f"{c}-token", "Authorization": f"Bearer {t}"}
        bad = dict(good, Authorization="Bearer pcl_wrong")
        for name in ["nginx-keyauth"] + self.portcullis_targets():
            ok, no = http_status(self.ports[name], "/x", good), http_status(self.ports[name], "/x", bad)
            if ok != 200 or no != 401:
                raise RuntimeError(f"{name}: good token -> {ok}, bad token -> {no}; not doing the same job")

    def lua(self):
        rows = ",\n".join(f'  {{"{c}", "{c}{self.profile_suffix}", "Bearer {t}"}}' for c, t in self.clients)
        return self.write("clients.lua", f"""
local clients = {{
{rows}
}}
local requests = {{}}
for k, v in ipairs(clients) do
  requests[k] = wrk.format("GET", "/items/42", {{ ["Host"] = "bench", ["X-Client-ID"] = v[1], ["X-Profile-ID"] = v[2], ["Authorization"] = v[3] }})
end
""" + LUA_ROTATE_AND_REPORT)

    def run_wrk(self, name, duration, script):
        argv = ["wrk", "-t", str(self.args.threads), "-c", str(self.args.connections), "-d", f"{duration}s",
                "--latency", "-s", script, f"http://127.0.0.1:{self.ports[name]}/"]
        pid = self.targets[name].pid
        before, steal_before = tree_cpu_ticks(pid), cpu_steal_ticks()
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
        after, steal_after = tree_cpu_ticks(pid), cpu_steal_ticks()
        line = [l for l in out.splitlines() if l.startswith("{")]
        if not line:
            raise RuntimeError(f"wrk gave no summary for {name}: {out}")
        r = json.loads(line[-1])
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        r["cpu_us_per_req"] = (after - before) / CLK_TCK * 1e6 / max(1, r["requests"])
        r["steal_pct"] = 100 * (steal_after[0] - steal_before[0]) / max(1, steal_after[1] - steal_before[1])
        return r

    def report_steal(self, results):
        """Says how many runs the host disturbed (CPU steal over 10%)."""
        runs = [r for rs in results.values() for r in rs]
        stolen = [r for r in runs if r["steal_pct"] > 10]
        if stolen:
            print(f"warning: {len(stolen)} of {len(runs)} runs had over 10% CPU steal (max "
                  f"{max(r['steal_pct'] for r in stolen):.0f}%): the host took the cores; rerun for clean medians")

    def run(self):
        self.setup_targets()
        self.check_same_job()
        script = self.lua()
        self.table(self.interleave(["upstream", "nginx-proxy", "nginx-keyauth"] + self.portcullis_targets(), script))

    def table(self, results):
        med = {n: {k: statistics.median(r[k] for r in rs) for k in ["rps", "p50_us", "p99_us", "cpu_us_per_req"]}
               for n, rs in results.items()}
        bad = {n: sum(r["errors"] + r["non2xx"] for r in rs) for n, rs in results.items()}
        p = med["portcullis"]
        print()
        print(f"wrk -t{self.args.threads} -c{self.args.connections}, {self.args.clients} clients rotated, "
              f"{self.args.rounds} interleaved rounds x {self.args.duration}s, medians; {os.cpu_count()} CPUs")
        print(f"{'target':16s} {'req/s':>9s} {'p50 ms':>7s} {'p99 ms':>7s} {'CPU us/req':>10s} {'errors':>6s} | "
              f"{'rps P/x':>7s} {'p50 P/x':>7s} {'p99 P/x':>7s} {'CPU P/x':>7s}")
        for n, m in med.items():
            print(f"{n:16s} {m['rps']:9.0f} {m['p50_us'] / 1000:7.2f} {m['p99_us'] / 1000:7.2f} "
                  f"{m['cpu_us_per_req']:10.1f} {bad[n]:6d} | {p['rps'] / m['rps']:7.2f} "
                  f"{p['p50_us'] / max(1, m['p50_us']):7.2f} {p['p99_us'] / max(1, m['p99_us']):7.2f} "
                  f"{p['cpu_us_per_req'] / max(0.01, m['cpu_us_per_req']):7.2f}")
        print("P/x = Portcullis divided by the row's target: > 1 is better for req/s, < 1 is better for latency and CPU.")
        self.report_steal(results)
        print(f"raw results: {self.path('results.json')}")

    def stop(self):
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def common_arguments(doc, rounds):
    """The wrk and binary options every bench script takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per target per round (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per target (default 2)")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"interleaved rounds (default {rounds})")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--clients", type=int, default=1000, help="client ids with tokens (default 1000)")
    parser.add_argument("--workers", type=int, default=0, help="Portcullis workers (default: its own, CPU count)")
    parser.add_argument("--bin", required=True, help="directory holding the release portcullis binaries")
    parser.add_argument("--baseline", default="",
                        help="directory of another build's binaries, run as portcullis-base beside the others (A/B)")
    return parser


def bench_main(bench_class, doc, rounds, tools, add_arguments=None):
    """Parses the common options, checks the tools, runs and always stops."""
    parser = common_arguments(doc, rounds)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run scripts/setup --bench")
    bench = bench_class(args)
    try:
        bench.run()
    finally:
        bench.stop()


def main():
    bench_main(Bench, __doc__, 3, ["nginx", "wrk"])


if __name__ == "__main__":
    main()
