#!/usr/bin/env python3
"""Where Portcullis spends its time per request, process by process.

Runs the bench/run load (wrk, 1000 client ids with their tokens rotated by
a Lua script, token auth, a never-hit rate limit) against Portcullis alone
and reads from /proc, for the router and for each worker:

  usr / sys    CPU microseconds per request in user space and in the kernel
  reads/req    read-type system calls per request (/proc/PID/io syscr)
  writes/req   write-type system calls per request (/proc/PID/io syscw)

and, for the router-worker link, decision frames per worker write (the
worker answers a whole read burst with one write). Repeated over --rounds
fresh starts, medians printed. With --perf SECONDS it also records the
router and a worker with `perf record -g` and prints the heaviest shared
objects and symbols of each (needs perf and perf_event_paranoid <= 1 or
root). With --allocs it also counts malloc calls per request, router and
workers apart, with a perf uprobe on libc's malloc (needs root; the probe
is removed afterwards). Everything listens on 127.0.0.1 only; every run is
bounded by --duration.
"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import CLK_TCK, Bench, bench_main, proc_stat, wait_http, wait_ready  # noqa: E402


def proc_sample(pid):
    """(user ticks, system ticks, read syscalls, write syscalls) of one process."""
    rest = proc_stat(pid)
    io = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            key, value = line.split(":")
            io[key] = int(value)
    return int(rest[11]), int(rest[12]), io["syscr"], io["syscw"]


def perf_attached(pid):
    """Whether process `pid` (a perf stat) has opened a perf event yet."""
    try:
        return any("perf_event" in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


class Profile(Bench):

    def run(self):
        self.targets = {}
        self.start_upstream()
        config = self.portcullis_config("portcullis", self.clients_yaml())
        script = self.lua()
        wait_http(self.ports["upstream"])
        rows = []
        for rnd in range(self.args.rounds):
            proc = self.start_portcullis("portcullis", config)
            wait_ready(self.ports["admin"])
            self.run_wrk("portcullis", self.args.warmup, script)
            router, workers = proc.pid, children(proc.pid)
            before = {p: proc_sample(p) for p in [router] + workers}
            r = self.run_wrk("portcullis", self.args.duration, script)
            after = {p: proc_sample(p) for p in [router] + workers}
            n = max(1, r["requests"])
            row = {"rps": r["rps"], "p99_ms": r["p99_us"] / 1000, "errors": r["errors"] + r["non2xx"],
                   "steal %": r["steal_pct"]}
            for role, pids in [("router", [router]), ("workers", workers)]:
                d = [sum(after[p][i] - before[p][i] for p in pids) for i in range(4)]
                row[f"{role} usr"] = d[0] / CLK_TCK * 1e6 / n
                row[f"{role} sys"] = d[1] / CLK_TCK * 1e6 / n
                row[f"{role} reads/req"] = d[2] / n
                row[f"{role} writes/req"] = d[3] / n
            row["frames/worker write"] = 1 / max(1e-9, row["workers writes/req"])
            rows.append(row)
            print(f"round {rnd + 1}: " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
            if self.args.perf and rnd == self.args.rounds - 1:
                self.perf(router, workers[0], script)
            if self.args.allocs and rnd == self.args.rounds - 1:
                self.allocs(router, workers, script)
            proc.terminate()
            proc.wait(timeout=30)
            self.procs.remove(("portcullis", proc))
        print()
        print(f"wrk -t{self.args.threads} -c{self.args.connections}, {self.args.clients} clients rotated, "
              f"{self.args.rounds} fresh starts x {self.args.duration}s, medians; {os.cpu_count()} CPUs")
        for key in rows[0]:
            print(f"  {key:22s} {statistics.median(r[key] for r in rows):10.2f}")

    def perf(self, router, worker, script):
        """perf record -g of the router and one worker under the same load."""
        data = {name: self.path(f"perf-{name}.data") for name in ["router", "worker"]}
        recorders = [subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", data[name],
                                       "--", "sleep", str(self.args.perf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for name, pid in [("router", router), ("worker", worker)]]
        self.run_wrk("portcullis", self.args.perf + 1, script)
        for rec in recorders:
            rec.wait(timeout=60)
        for name, path in data.items():
            for sort in ["dso", "sym"]:
                out = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", sort, "-g", "none",
                                      "--stdio", "--percent-limit", "1"], capture_output=True, text=True).stdout
                lines = [l.rstrip()[:150] for l in out.splitlines() if l.strip() and not l.startswith("#")]
                print(f"\n{name}: heaviest by {sort} (self time, % of its samples)")
                print("\n".join(lines[:15]))


    def allocs(self, router, workers, script):
        """malloc calls per request: every Swift allocation and ByteBuffer
        ends in libc's malloc, so a uprobe there counts them all."""
        with open(f"/proc/{router}/maps") as f:
            libc = next(line.split()[-1] for line in f if "/libc.so" in line)
        subprocess.run(["perf", "probe", "-q", "-d", "probe_libc:malloc"], capture_output=True)
        subprocess.run(["perf", "probe", "-q", "-x", libc, "malloc"], check=True, capture_output=True)
        try:
            counters = {}
            for name, pids in [("router", [router]), ("workers", workers)]:
                counters[name] = subprocess.Popen(
                    ["perf", "stat", "-x", ",", "-e", "probe_libc:malloc", "-p", ",".join(map(str, pids)),
                     "--", "sleep", str(self.args.duration + 2)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            # Ready when each perf has its counters open, so none of the load goes uncounted.
            for proc in counters.values():
                deadline = time.monotonic() + 10
                while not perf_attached(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.02)
            r = self.run_wrk("portcullis", self.args.duration, script)
            n = max(1, r["requests"])
            print(f"\nmalloc calls per request ({n} requests; counting spans the load and the 2 idle seconds after it)")
            for name, proc in counters.items():
                _, err = proc.communicate(timeout=self.args.duration + 60)
                count = next((int(line.split(",")[0]) for line in err.splitlines() if "probe_libc:malloc" in line
                              and line.split(",")[0].isdigit()), None)
                print(f"  {name:8s} {count / n:8.2f}" if count is not None else f"  {name:8s} (perf printed no count)")
        finally:
            subprocess.run(["perf", "probe", "-q", "-d", "probe_libc:malloc"], capture_output=True)


def main():
    def options(parser):
        parser.add_argument("--perf", type=int, default=0,
                            help="also perf-record router and a worker for SECONDS (default off)")
        parser.add_argument("--allocs", action="store_true",
                            help="also count malloc calls per request with a perf uprobe (root)")
    bench_main(Profile, __doc__, 3, ["nginx", "wrk"], options)


if __name__ == "__main__":
    main()
