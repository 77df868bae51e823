#!/usr/bin/env python3
"""The floor under the router: what moving the bytes costs, measured.

Runs, interleaved under the bench/run.py load (wrk, 1000 client ids with
their tokens rotated by a Lua script, one nginx upstream):

  nginx-proxy        nginx as a plain keep-alive reverse proxy
  nginx-keyauth      nginx with the API-key map and limit_req of bench/run.py
  nio-passthrough    SwiftNIO moving bytes between each client connection and
                     its own upstream connection: no parsing, no auth, no
                     worker (bench/passthrough/Sources/NIOPassthrough)
  epoll-passthrough  the same on a bare epoll loop (bench/passthrough/Sources/EpollPassthrough)
  portcullis         the gateway with token auth, as in bench/run.py

and prints, per target, CPU microseconds per request of the process tree
split into user and kernel time, next to the usual table. Portcullis'
router is SwiftNIO by contract (SPEC §1) and asks a worker process over a
Unix socket for every decision: nio-passthrough is the least that router
can cost, and Portcullis minus it is what parsing, the worker hop and
everything else add. Loopback only; every run is bounded by --duration.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import CLK_TCK, Bench, bench_main, free_port, proc_stat, wait_http, wait_ready  # noqa: E402


def tree_split(root_pid):
    """(user, kernel) clock ticks of root_pid and its descendants."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                rest = proc_stat(entry)
            except OSError:
                continue
            stats[int(entry)] = (int(rest[1]), int(rest[11]), int(rest[12]))
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, _) in stats.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return (sum(stats[p][1] for p in tree if p in stats), sum(stats[p][2] for p in tree if p in stats))


class Floor(Bench):
    def run(self):
        self.targets = {}
        for name in ["nio-passthrough", "epoll-passthrough"]:
            self.ports[name] = free_port()
        self.setup_targets()
        up = str(self.ports["upstream"])
        floor = self.args.floor_bin
        for name, binary in [("nio-passthrough", "NIOPassthrough"), ("epoll-passthrough", "EpollPassthrough")]:
            self.targets[name] = self.start(name, [os.path.join(floor, binary), str(self.ports[name]), up, "2"])
            wait_http(self.ports[name])
        self.check_same_job()
        script = self.lua()
        self.split = {}
        names = ["nginx-proxy", "nginx-keyauth", "nio-passthrough", "epoll-passthrough", "portcullis"]
        results = self.interleave(names, script)
        self.table(results)
        print()
        print(f"{'target':18s} {'user us/req':>11s} {'kernel us/req':>13s}   (medians)")
        for name in names:
            splits = self.split[name][-self.args.rounds:]
            print(f"{name:18s} {statistics.median(s[0] for s in splits):11.1f} {statistics.median(s[1] for s in splits):13.1f}")

    def run_wrk(self, name, duration, script):
        pid = self.targets[name].pid
        before = tree_split(pid)
        r = super().run_wrk(name, duration, script)
        after = tree_split(pid)
        n = max(1, r["requests"])
        self.split.setdefault(name, []).append(
            ((after[0] - before[0]) / CLK_TCK * 1e6 / n, (after[1] - before[1]) / CLK_TCK * 1e6 / n))
        return r


def main():
    def options(parser):
        parser.add_argument("--floor-bin", required=True, help="directory holding NIOPassthrough and EpollPassthrough")
    bench_main(Floor, __doc__, 3, ["nginx", "wrk"], options)


if __name__ == "__main__":
    main()
