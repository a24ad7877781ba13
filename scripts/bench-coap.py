#!/usr/bin/env python3
"""CoAP block-wise serving on loopback UDP: ferry against libcoap and aiocoap.

Each server serves the same random file; the same client, libcoap's

    coap-client-notls -m get -b 1024 coap://[::1]:PORT/PATH -o OUT

fetches it, several repetitions per server, the servers' order rotating every repetition so a
noisy neighbour hits all of them alike. Every output is compared byte for byte with the file.

Printed per server: median blocks/s over the repetitions (blocks = ceil(size / 1024) per
transfer; wall time of the client), CPU-seconds of the server process per block (utime + stime
from /proc/PID/stat around each transfer, summed over all repetitions), and ferry's ratios to
libcoap: throughput (ferry/libcoap, target >= 1) and CPU per block (libcoap/ferry, > 1 means
ferry spends less). The load average is printed before and after.

    scripts/bench-coap.py [--ferry PATH] [--size BYTES] [--reps N] [--servers ferry,libcoap,aiocoap]
    scripts/bench-coap.py --smoke        # 64 KiB, one repetition: checks transfers only
    scripts/bench-coap.py --cost         # ferry and libcoap under callgrind and strace

`--cost` is the figure a loaded machine cannot blur: each server runs once per tool with no
fetch and once with two, and the difference per block is printed: user-space instructions
(valgrind's callgrind) and system calls (strace -c). Wall time means nothing there.

Exit status: non-zero when a server cannot start or a transfer fails or differs; never for a
missed speed target. Only [::1] and ports the kernel picks are used; every process started is
killed on exit. Needs coap-client-notls/coap-server-notls (apt-get install libcoap3-bin) and
aiocoap-fileserver (pip install aiocoap); `--install` installs what is missing.
"""

import argparse
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BLOCK = 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED = []  # every Popen, killed on exit


def stop_all():
    for p in STARTED:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def free_udp_port():
    """A port the kernel considers free on [::1] right now."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a process (all its threads, dead ones included), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Field 2 (comm) may contain spaces; the fields after it start past the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sched_seconds(pid):
    """On-CPU time of a process's live threads from /proc/PID/task/*/schedstat (nanoseconds, so
    far finer than the 10 ms ticks of /proc/PID/stat); None where the kernel has no schedstat."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return total / 1e9


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def wait_udp_listening(port, proc, what, timeout=15.0):
    """Waits until something is bound to UDP [::1]:port (read from /proc/net/udp6)."""
    want = f":{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        with open("/proc/net/udp6") as f:
            for line in f.readlines()[1:]:
                local = line.split()[1]
                if local.endswith(want):
                    return
        time.sleep(0.05)
    raise RuntimeError(f"{what} is not listening on [::1]:{port} after {timeout} s")


def fetch(port, path, out, timeout):
    """One GET with the reference client; returns wall seconds, raises on failure."""
    cmd = ["coap-client-notls", "-m", "get", "-b", str(BLOCK), "-B", str(timeout), f"coap://[::1]:{port}/{path}",
           "-o", out]
    if os.path.exists(out):
        os.unlink(out)
    start = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 10)
    took = time.perf_counter() - start
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.decode(errors='replace')[-400:]}")
    return took


class Server:
    name = "?"

    def __init__(self, workdir, source):
        self.workdir = workdir
        self.source = source
        self.proc = None
        self.port = None
        self.path = None
        self.wrapper = []  # e.g. valgrind or strace in front of the server's command

    def popen(self, cmd, **kw):
        log = open(os.path.join(self.workdir, f"{self.name}.log"), "wb")
        p = subprocess.Popen(self.wrapper + cmd, stdout=kw.pop("stdout", log), stderr=log, stdin=subprocess.DEVNULL, **kw)
        STARTED.append(p)
        return p


class Ferry(Server):
    name = "ferry"

    def __init__(self, workdir, source, binary):
        super().__init__(workdir, source)
        self.binary = binary

    def start(self):
        self.path = "fw/image.bin"
        self.proc = self.popen(
            [self.binary, "coap-serve", "--listen", "[::1]:0", "--file", self.source, "--path", self.path],
            stdout=subprocess.PIPE,
        )
        line = self.proc.stdout.readline().decode().strip()  # "listening on [::1]:PORT"
        if not line.startswith("listening on "):
            self.proc.wait(timeout=5)
            raise RuntimeError(f"ferry coap-serve did not start (exit {self.proc.returncode}), see {self.workdir}")
        self.port = int(line.rsplit(":", 1)[1])


class Libcoap(Server):
    name = "libcoap"

    def start(self):
        self.port = free_udp_port()
        self.path = "bench"
        # -d: resources may be created by PUT; the file is PUT once, then served from memory.
        self.proc = self.popen(["coap-server-notls", "-A", "::1", "-p", str(self.port), "-d", "4", "-v", "0"])
        wait_udp_listening(self.port, self.proc, "coap-server-notls")
        cmd = ["coap-client-notls", "-m", "put", "-b", str(BLOCK), "-B", "60", "-f", self.source,
               f"coap://[::1]:{self.port}/{self.path}"]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
        if r.returncode != 0:
            raise RuntimeError(f"PUT to coap-server-notls failed: {r.stderr.decode(errors='replace')[-400:]}")


class Aiocoap(Server):
    name = "aiocoap"

    def start(self):
        self.port = free_udp_port()
        root = os.path.join(self.workdir, "aiocoap-root")
        os.makedirs(root, exist_ok=True)
        shutil.copyfile(self.source, os.path.join(root, "image.bin"))
        self.path = "image.bin"
        self.proc = self.popen(["aiocoap-fileserver", "--bind", f"[::1]:{self.port}", root])
        wait_udp_listening(self.port, self.proc, "aiocoap-fileserver")


def ensure_tools(install):
    missing = []
    if not shutil.which("coap-client-notls") or not shutil.which("coap-server-notls"):
        missing.append(("libcoap3-bin", ["apt-get", "install", "-y", "libcoap3-bin"]))
    if not shutil.which("aiocoap-fileserver"):
        missing.append(("aiocoap", [sys.executable, "-m", "pip", "install", "aiocoap"]))
    for what, cmd in missing:
        if not install:
            sys.exit(f"bench-coap: {what} is missing; install it or pass --install ({' '.join(cmd)})")
        print(f"bench-coap: installing {what}: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True)


def interrupt(proc, timeout=60):
    """SIGINT and wait: both servers exit cleanly on it, so valgrind and strace write their files.
    strace blocks the signal for itself (it writes to a file), so its child gets it instead."""
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    if proc.args[0] == "strace" and children:
        for child in children:
            os.kill(child, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout=timeout)


def cost(servers, blocks, workdir, timeout):
    """Instructions and system calls per served block, from a run with no fetch and one with two."""
    fetches = 2
    tools = {
        "Ir": (lambda out: ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"],
               lambda out: int(next(l.split()[1] for l in open(out) if l.startswith(("summary:", "totals:"))))),
        "syscalls": (lambda out: ["strace", "-f", "-c", "-o", out],
                     lambda out: int(next(l.split()[3] for l in open(out) if l.rstrip().endswith(" total")))),
    }
    per_block = {}
    for s in servers:
        for tool, (wrap, read) in tools.items():
            counts = []
            for n in (0, fetches):
                out = os.path.join(workdir, f"{s.name}-{tool}-{n}.out")
                s.wrapper = wrap(out)
                s.start()
                for i in range(n):
                    fetch(s.port, s.path, os.path.join(workdir, f"cost-{s.name}-{i}.bin"), timeout)
                interrupt(s.proc)
                counts.append(read(out))
            per_block[(s.name, tool)] = (counts[1] - counts[0]) / (fetches * blocks)
    print()
    print(f"cost per served block (Block2 {BLOCK}, {fetches} fetches of {blocks} blocks minus a run with none)")
    print(f"{'server':<10} {'instructions':>13} {'system calls':>13}")
    for s in servers:
        print(f"{s.name:<10} {per_block[(s.name, 'Ir')]:>13.0f} {per_block[(s.name, 'syscalls')]:>13.2f}")
    names = {s.name for s in servers}
    if {"ferry", "libcoap"} <= names:
        for tool in tools:
            print(f"ratio libcoap/ferry {tool} per block: "
                  f"{per_block[('libcoap', tool)] / per_block[('ferry', tool)]:.3f} (> 1: ferry spends less)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ferry", default=os.environ.get("FERRY_BIN", "target/release/ferry"), help="the ferry binary")
    ap.add_argument("--size", type=int, default=1 << 20, help="bytes served (default 1 MiB)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per server (default 5)")
    ap.add_argument("--servers", default="ferry,libcoap,aiocoap")
    ap.add_argument("--timeout", type=int, default=120, help="seconds one transfer may take")
    ap.add_argument("--smoke", action="store_true", help="64 KiB, one repetition: correctness only")
    ap.add_argument("--install", action="store_true", help="apt-get/pip install the peers if missing")
    ap.add_argument("--cost", action="store_true", help="instructions and system calls per block (ferry, libcoap)")
    args = ap.parse_args()
    if args.cost and (not shutil.which("valgrind") or not shutil.which("strace")):
        sys.exit("bench-coap: --cost needs valgrind and strace")
    if args.smoke:
        args.size, args.reps = 64 * 1024, 1
    ensure_tools(args.install)

    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    workdir = tempfile.mkdtemp(prefix="ferry-bench-coap-")
    source = os.path.join(workdir, "image.bin")
    with open(source, "wb") as f:
        f.write(random.Random(0xF3).randbytes(args.size))
    with open(source, "rb") as f:
        want = f.read()
    blocks = math.ceil(args.size / BLOCK)

    servers = []
    for n in names:
        if n == "ferry":
            servers.append(Ferry(workdir, source, os.path.abspath(args.ferry)))
        elif n == "libcoap":
            servers.append(Libcoap(workdir, source))
        elif n == "aiocoap":
            servers.append(Aiocoap(workdir, source))
        else:
            sys.exit(f"bench-coap: unknown server {n}")

    if args.cost:
        try:
            return cost([s for s in servers if s.name != "aiocoap"], blocks, workdir, args.timeout)
        finally:
            stop_all()
            shutil.rmtree(workdir, ignore_errors=True)

    failures = []
    wall = {s.name: [] for s in servers}
    cpu = {s.name: 0.0 for s in servers}
    sched = {s.name: 0.0 for s in servers}
    load_before = load_average()
    try:
        for s in servers:
            try:
                s.start()
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                print(f"bench-coap: {s.name} did not start: {e}; logs in {workdir}", file=sys.stderr)
                return 1
            print(f"bench-coap: {s.name} pid {s.proc.pid} on [::1]:{s.port}/{s.path}", flush=True)
        for rep in range(args.reps):
            order = servers[rep % len(servers):] + servers[: rep % len(servers)]
            for s in order:
                out = os.path.join(workdir, f"out-{s.name}-{rep}.bin")
                before, sched_before = cpu_seconds(s.proc.pid), sched_seconds(s.proc.pid)
                try:
                    took = fetch(s.port, s.path, out, args.timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    failures.append(f"{s.name} rep {rep}: {e}")
                    continue
                cpu[s.name] += cpu_seconds(s.proc.pid) - before
                sched_after = sched_seconds(s.proc.pid)
                if sched is not None and sched_before is not None and sched_after is not None:
                    sched[s.name] += sched_after - sched_before
                else:
                    sched = None
                with open(out, "rb") as f:
                    got = f.read()
                if got != want:
                    failures.append(f"{s.name} rep {rep}: output differs ({len(got)} bytes, want {len(want)})")
                    continue
                os.unlink(out)
                wall[s.name].append(took)
    finally:
        stop_all()

    print()
    print(f"CoAP GET of {args.size} bytes, Block2 {BLOCK} ({blocks} blocks), {args.reps} repetitions interleaved; "
          f"client coap-client-notls; load average {load_before} -> {load_average()}; {os.cpu_count()} CPUs")
    print(f"{'server':<10} {'ok':>4} {'median s':>10} {'blocks/s':>10} {'CPU s/block':>12} {'CPU us/block':>13} "
          f"{'schedstat us/block':>19}")
    rate, per_block = {}, {}
    for s in servers:
        w = wall[s.name]
        if not w:
            print(f"{s.name:<10} {0:>4}/{args.reps}  (no successful transfer)")
            continue
        rate[s.name] = blocks / statistics.median(w)
        per_block[s.name] = cpu[s.name] / (blocks * len(w))
        fine = f"{sched[s.name] / (blocks * len(w)) * 1e6:>19.1f}" if sched is not None else f"{'n/a':>19}"
        print(f"{s.name:<10} {len(w):>4} {statistics.median(w):>10.3f} {rate[s.name]:>10.0f} "
              f"{per_block[s.name]:>12.2e} {per_block[s.name] * 1e6:>13.1f} {fine}")
        if sched is not None:
            per_block[s.name] = sched[s.name] / (blocks * len(w))
    if "ferry" in rate and "libcoap" in rate:
        tput = rate["ferry"] / rate["libcoap"]
        verdict = "met" if tput >= 1 else "MISSED"
        print(f"ratio ferry/libcoap blocks/s: {tput:.3f} (target >= 1: {verdict})")
        if per_block["ferry"] > 0:
            print(f"ratio libcoap/ferry CPU per block: {per_block['libcoap'] / per_block['ferry']:.3f} "
                  f"(> 1: ferry spends less; from {'schedstat' if sched is not None else '/proc/PID/stat'})")
        else:
            print("ratio libcoap/ferry CPU per block: ferry used under one clock tick; raise --size or --reps")
    print(f"CPU s/block from /proc/PID/stat utime+stime at {CLK_TCK} ticks/s (coarse below ~{10 / CLK_TCK:.2f} s in "
          "total); schedstat: on-CPU ns of the live threads")

    if failures:
        print("\nFAILED:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        print(f"logs kept in {workdir}", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    finally:
        stop_all()
