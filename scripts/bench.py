#!/usr/bin/env python3
"""The all-in-one's speed table in one run, as issue 14 states its targets.

Measures this machine's ceilings first (a bare axum hello-world driven by
the load tool, SQLite insert+commit loops), then starts the all-in-one on a
fresh data directory and runs, one after the other:

  cold start    time from exec to /actuator/ready, then the resident set
                once idle (12 s later)
  orders        GET /orders (the seed's siege case), a customer with a few
                dozen orders, concurrency 20
  order         GET /orders/{id}, concurrency 20, as a ratio to hello-world
  place         POST /orders, concurrency 20: its p99
  saga          the whole saga, closed loop, concurrency 20: sagas/s and the
                server's CPU per saga (utime+stime from /proc around the run)
  half-peak     the saga open loop at half that rate: event-to-view lag p99
  memory        the server's peak resident set (VmHWM) over all of it

and prints each figure beside its ceiling or target, with the ratio. Every
number comes from this one run on this machine; compare runs by their
ratios. Needs a release build:

    cargo build --release && scripts/bench.py            # 10 s per run
    scripts/bench.py --seconds 5 --json bench.json       # shorter; keep it all

Speed is measured here, never asserted by a test.
"""

import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ORIGINAL_SIEGE = 65.73  # trans/s, the seed's `siege -c20` on GET /orders


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(base):
    try:
        with urllib.request.urlopen(base + "/actuator/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def status_kb(pid, field):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def cpu_ms(pid):
    """utime + stime of the process so far, in milliseconds."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def step(report, name):
    return next(s for s in report["steps"] if s["name"] == name)


def lag_p99(report):
    rows = [l for l in report["lag"] if l["name"] == "notification (all)"]
    return rows[0]["p99_ms"] if rows else float("nan")


class Bench:
    def __init__(self, binary, seconds, work):
        self.binary = binary
        self.seconds = seconds
        self.work = work
        self.rows = []
        self.reports = {}

    def run(self, *args, log):
        with open(self.work / log, "w") as out:
            subprocess.run([self.binary, *args], stdout=out, stderr=subprocess.STDOUT, check=True)

    def load(self, name, scenario, *extra):
        path = self.work / f"{name}.json"
        self.run(
            "load", "--target", self.base, "--scenario", scenario,
            "--ceilings", str(self.work / "ceilings.json"),
            "--server-pid", str(self.server.pid), "--json", str(path), *extra,
            log=f"{name}.txt",
        )
        report = json.loads(path.read_text())
        self.reports[name] = report
        if report["error_total"]:
            print(f"{name}: {report['error_total']} errors: {report['errors']}", file=sys.stderr)
        return report

    def row(self, what, value, unit, against=None, against_what="", target=None):
        ratio = value / against if against else None
        self.rows.append((what, value, unit, against, against_what, ratio, target))

    def measure(self):
        duration = f"{self.seconds}s"
        self.run("ceilings", "--ceiling-duration", duration,
                 "--json", str(self.work / "ceilings.json"), log="ceilings.txt")
        ceilings = json.loads((self.work / "ceilings.json").read_text())
        hello = ceilings["hello"]["requests_per_s"]

        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        self.server = subprocess.Popen(
            [self.binary, "--listen", f"127.0.0.1:{port}", "--data-dir", str(self.work / "data")],
            stdout=open(self.work / "server.txt", "w"), stderr=subprocess.STDOUT)
        try:
            while not ready(self.base):
                if self.server.poll() is not None:
                    raise RuntimeError("the server exited; see server.txt")
                if time.monotonic() - started > 30:
                    raise RuntimeError("not ready after 30 s")
                time.sleep(0.002)
            cold = (time.monotonic() - started) * 1000
            # Idle: after the start's transients. Hashing the demo
            # passwords leaves a 19 MiB argon2 block with its blocking
            # thread, which retires after Tokio's 10 s keep-alive.
            time.sleep(12)
            self.row("cold start to ready", cold, "ms", target="< 500 ms")
            self.row("idle resident set", status_kb(self.server.pid, "VmRSS") / 1024, "MiB",
                     target="< 30 MiB")

            # A customer with a few dozen orders, as in the seed's siege case.
            self.load("orders-setup", "place", "--count", "30", "--concurrency", "5")
            orders = self.load("orders", "orders", "--concurrency", "20", "--duration", duration)
            self.row("GET /orders, c20", orders["requests_per_s"], "req/s", ORIGINAL_SIEGE,
                     "the seed's siege", ">= 100x")
            order = self.load("order", "order", "--concurrency", "20", "--duration", duration)
            self.row("GET /orders/{id}, c20", order["requests_per_s"], "req/s", hello,
                     "hello-world", ">= 0.5")
            self.row("GET /orders/{id} p99", step(order, "GET /orders/{id}")["p99_ms"], "ms",
                     target="<= 5 ms")
            place = self.load("place", "place", "--concurrency", "20", "--duration", duration)
            self.row("POST /orders p99, c20", step(place, "place")["p99_ms"], "ms",
                     target="< 20 ms")

            before = cpu_ms(self.server.pid)
            saga = self.load("saga", "saga", "--concurrency", "20", "--duration", duration)
            spent = cpu_ms(self.server.pid) - before
            peak = saga["sagas_per_s"]
            self.row("full sagas, c20", peak, "sagas/s", target=">= 1000")
            self.row("server CPU per saga", spent / max(saga["sagas"], 1), "ms",
                     target="<= 1.5 ms")
            half = self.load("half-peak", "saga", "--rate", f"{peak / 2:.1f}",
                             "--concurrency", "50", "--duration", duration)
            self.row("event-to-view lag p99 at half the peak", lag_p99(half), "ms",
                     target="<= 15 ms")
            self.row("peak resident set", status_kb(self.server.pid, "VmHWM") / 1024, "MiB",
                     target="< 150 MiB")
        finally:
            self.server.terminate()
            self.server.wait(timeout=30)
        return ceilings

    def print(self, ceilings):
        print(f"ceilings: hello-world {ceilings['hello']['requests_per_s']:.0f} req/s; "
              f"SQLite insert+commit {ceilings['sqlite_commit_each']['inserts_per_s']:.0f}/s each, "
              f"{ceilings['sqlite_batched']['inserts_per_s']:.0f}/s batched; "
              f"{ceilings['cores']} cores")
        print(f"{'measure':<42} {'value':>12}  {'against':>24}  {'ratio':>8}  target")
        for what, value, unit, against, against_what, ratio, target in self.rows:
            vs = f"{against:.1f} {against_what}" if against else ""
            r = f"{ratio:.3f}" if ratio is not None else ""
            print(f"{what:<42} {value:>8.1f} {unit:<5} {vs:>24}  {r:>8}  {target or ''}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default="target/release/hanwha-delivery")
    parser.add_argument("--seconds", type=int, default=10, help="length of each run")
    parser.add_argument("--json", help="write every figure and report here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    binary = str(pathlib.Path(args.bin).resolve())
    if not os.access(binary, os.X_OK):
        sys.exit(f"no binary at {binary}: cargo build --release first")
    work = pathlib.Path(tempfile.mkdtemp(prefix="hanwha-bench-"))
    bench = Bench(binary, args.seconds, work)
    ceilings = bench.measure()
    bench.print(ceilings)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({
            "ceilings": ceilings,
            "rows": [dict(zip(("measure", "value", "unit", "against", "against_what", "ratio",
                               "target"), r)) for r in bench.rows],
            "reports": bench.reports,
        }, indent=2))
    if args.keep:
        print(f"work directory: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
