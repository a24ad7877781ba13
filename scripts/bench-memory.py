#!/usr/bin/env python3
"""Peak resident memory of ferryd under light management traffic.

Starts `ferryd` on a temporary configuration (the simulated PAN of --scenario, by default
config/sim/building.toml with ~100 devices, run in real time inside ferryd; state and control
socket in a temp folder, metrics on 127.0.0.1:0, CoAP on [::1]:0), waits until `ferry status`
answers, then for --seconds keeps scraping /metrics and running `ferry status` in turn. At the
end it reads VmHWM (the kernel's peak RSS) and VmRSS from /proc/PID/status and prints them with
the request counts and the load average. Target: VmHWM <= 24 MiB.

    scripts/bench-memory.py [--ferryd PATH] [--ferry PATH] [--seconds N] [--scenario FILE]
    scripts/bench-memory.py --smoke     # 3 s: checks that ferryd starts, answers and stops

Exit status: non-zero when ferryd does not start, a scrape or a status call fails, or ferryd
does not stop on SIGTERM; never for a missed memory target. ferryd is killed on exit.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

TARGET_MIB = 24
STARTED = []


def stop_all():
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()


def proc_status(pid):
    """VmHWM, VmRSS (KiB) and Threads of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def status(ferry, socket_path):
    r = subprocess.run([ferry, "--socket", socket_path, "status", "--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"ferry status exited {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ferryd", default=os.environ.get("FERRYD_BIN", "target/release/ferryd"))
    ap.add_argument("--ferry", default=os.environ.get("FERRY_BIN", "target/release/ferry"))
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to load it (default 30)")
    ap.add_argument("--smoke", action="store_true", help="3 s: correctness only")
    ap.add_argument("--scenario", default="config/sim/building.toml", help="simulated PAN ferryd runs")
    args = ap.parse_args()
    if args.smoke:
        args.seconds = 3.0
    ferryd, ferry = os.path.abspath(args.ferryd), os.path.abspath(args.ferry)
    scenario = os.path.abspath(args.scenario)

    workdir = tempfile.mkdtemp(prefix="ferry-bench-memory-")
    config = os.path.join(workdir, "ferry.toml")
    socket_path = os.path.join(workdir, "control.sock")
    with open(config, "w") as f:
        f.write('[log]\nlevel = "warn"\n'
                f'[radio]\nurl = "sim:{scenario}"\n'
                '[store]\nstate_dir = "state"\n'
                '[metrics]\nlisten = "127.0.0.1:0"\n'
                '[control]\nsocket = "control.sock"\n'
                '[coap]\nlisten = ["[::1]:0"]\n')
    log = open(os.path.join(workdir, "ferryd.log"), "wb")
    proc = subprocess.Popen([ferryd, "--config", config], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    STARTED.append(proc)
    failures = []
    scrapes = statuses = 0
    rss_samples = []
    load_before = load_average()
    try:
        deadline = time.monotonic() + 20
        report = None
        while report is None:
            if proc.poll() is not None:
                raise RuntimeError(f"ferryd exited {proc.returncode} at start; log in {workdir}/ferryd.log")
            try:
                report = status(ferry, socket_path)
            except (RuntimeError, json.JSONDecodeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        started = proc_status(proc.pid)
        metrics_url = f"http://{report['metrics_listen']}/metrics"
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(metrics_url, timeout=5) as r:
                    body = r.read()
                if b"process_resident_memory_bytes" not in body:
                    failures.append("a scrape lacked process_resident_memory_bytes")
                scrapes += 1
                status(ferry, socket_path)
                statuses += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported, none hides
                failures.append(f"request {scrapes + statuses}: {e}")
                if len(failures) > 5:
                    break
            rss_samples.append(proc_status(proc.pid)["VmRSS"])
            time.sleep(0.05)
        final = proc_status(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
            if code != 0:
                failures.append(f"ferryd exited {code} on SIGTERM")
        except subprocess.TimeoutExpired:
            failures.append("ferryd did not stop within 10 s of SIGTERM")
    except Exception as e:  # noqa: BLE001
        failures.append(str(e))
        final = started = None
    finally:
        stop_all()

    if final:
        hwm = final["VmHWM"] / 1024
        print(f"ferryd memory over {args.seconds:.0f} s: {scrapes} /metrics scrapes, {statuses} `ferry status` calls; "
              f"load average {load_before} -> {load_average()}; {os.cpu_count()} CPUs")
        print(f"  RSS after start  {started['VmRSS'] / 1024:7.1f} MiB")
        print(f"  RSS at the end   {final['VmRSS'] / 1024:7.1f} MiB   (max sampled {max(rss_samples, default=0) / 1024:.1f})")
        print(f"  peak RSS (VmHWM) {hwm:7.1f} MiB   threads {final['Threads']}")
        print(f"  target VmHWM <= {TARGET_MIB} MiB: {'met' if hwm <= TARGET_MIB else 'MISSED'}")
    if failures:
        print("FAILED:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        print(f"log kept in {workdir}/ferryd.log", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    finally:
        stop_all()
