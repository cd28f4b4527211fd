#!/usr/bin/env python3
"""Macro benchmarks: servers under load on loopback, side by side in one run.

Echo: uco's echo_server against the raw liburing floor, the epoll and
thread-per-connection baselines and the peers that bench/peers/ can build,
all driven by the same load generator (uco-load).  File server: uco's
file_server against nginx, driven by wrk.

Runs are interleaved (A B C A B C ...), each with a fresh server process on a
fresh port (port 0, read back from its "listening on" line).  The server is
pinned to CPU 0 and the load generator to CPU 1 where the machine has two.
The server's CPU time over the run comes from the POSIX CPU clock of the
process and its children (nanoseconds, exited threads included).

    bench_macro.py --build build --out results.json [--full] [--only NAMES]
"""
import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
SERVER_CPU, LOAD_CPU = (0, 1) if NCPU >= 2 else (None, None)

# name -> (label, how it is built)
ECHO_SERVERS = [
    ("uco", "uco echo_server", "sample"),
    ("uring", "raw liburing (floor)", "baseline"),
    ("epoll", "epoll, edge-triggered", "baseline"),
    ("threads", "thread per connection", "baseline"),
    ("libuv", "libuv", "peer"),
    ("asio_epoll", "Boost.Asio, epoll", "peer"),
    ("asio_uring", "Boost.Asio, io_uring", "peer"),
    ("go", "Go, GOMAXPROCS=1", "peer"),
    ("tokio", "tokio current_thread", "peer"),
]
BASELINE_BIN = {"uring": "echo_uring", "epoll": "echo_epoll", "threads": "echo_threads"}


def log(msg):
    print(msg, flush=True)


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def pin(cpu):
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


# ---- processes -------------------------------------------------------------

def tree_pids(pid):
    """pid and its descendants (nginx's workers, say)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def process_cpu_ns(pid):
    """CPU time of one process (all its threads, exited ones included), in
    ns: its POSIX CPU clock, which Linux exposes for any pid as
    ((~pid) << 3) | CPUCLOCK_SCHED.  /proc/PID/stat only gives 10 ms ticks,
    which on a 1 s run would be a 1% error by itself."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | 2)
    except OSError:  # gone, or a kernel without it: fall back to the ticks
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // TICK
        except (OSError, IndexError, ValueError):
            return 0


def cpu_ns(pid):
    """CPU time of pid's whole tree (nginx's workers too), in ns."""
    return sum(process_cpu_ns(p) for p in tree_pids(pid))


class Server:
    """A server process: started pinned, port read back, stopped with SIGTERM."""

    def __init__(self, argv, port=None, env=None, ready_line=True):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, preexec_fn=pin(SERVER_CPU),
                                     env=env)
        self.port = port
        try:
            if ready_line:
                self.port = self._read_port()
            self._wait_connectable()
        except Exception:
            self.stop()
            raise

    def _read_port(self):
        deadline = time.monotonic() + 10
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                m = re.search(rb"listening on (\S+):(\d+)\s*\n", buf)
                if m:
                    return int(m.group(2))
            elif self.proc.poll() is not None:
                break
        err = self.proc.stderr.read1(4096).decode(errors="replace") if self.proc.poll() is not None else ""
        raise RuntimeError(f"{self.argv[0]} gave no 'listening on' line: {buf[:200]!r} {err}")

    def _wait_connectable(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}")
                time.sleep(0.02)
        raise RuntimeError(f"{self.argv[0]}: port {self.port} never accepted")

    def cpu_ns(self):
        return cpu_ns(self.proc.pid)

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        return self.proc.returncode


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_pinned(argv, timeout):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       preexec_fn=pin(LOAD_CPU))
    return p.returncode, p.stdout, p.stderr


# ---- which servers exist ---------------------------------------------------

def find_echo_servers(build, only):
    """[(name, label, argv-prefix)], {name: reason skipped}."""
    found, skipped = [], {}
    for name, label, kind in ECHO_SERVERS:
        if only and name not in only:
            continue
        if kind == "sample":
            path = os.path.join(build, "examples", "echo_server")
        elif kind == "baseline":
            path = os.path.join(build, "bench", BASELINE_BIN[name])
        else:
            path, why = build_peer(build, name)
            if path is None:
                skipped[name] = why
                log(f"   {name}: skipped: {why}")
                continue
        if not os.access(path, os.X_OK):
            skipped[name] = f"{path} not built"
            log(f"   {name}: skipped: {path} not built")
            continue
        found.append((name, label, [os.path.abspath(path)]))
    return found, skipped


def build_peer(build, name):
    script = os.path.join("bench", "peers", name + ".sh")
    if not os.path.exists(script):
        return None, f"no {script}"
    log(f"   building peer {name} ({script}) ...")
    t0 = time.monotonic()
    p = subprocess.run(["bash", script, build], capture_output=True, text=True, timeout=1800)
    text = (p.stdout + p.stderr).strip()
    if p.returncode == 77:
        m = re.search(r"skipped: (.*)", text)
        return None, m.group(1) if m else text.splitlines()[-1:] or "skipped"
    if p.returncode != 0:
        tail = " | ".join(text.splitlines()[-3:])
        return None, f"build failed (exit {p.returncode}): {tail}"
    log(f"   {name}: ready in {time.monotonic() - t0:.1f} s")
    return os.path.join(build, "peers", name), None


# ---- echo --------------------------------------------------------------------

def cpu_window(cpu, wall_s, duration_s):
    """The server's CPU over the counted window, or None when the two reads
    did not bracket it: this harness is not pinned, and beside a server of
    10,000 runnable threads it once read "measuring" and "done" together
    after the run (a CPU time of 0.007 us per request)."""
    if cpu is None or wall_s < 0.9 * duration_s:
        return None
    return cpu


def cpu_text(us):
    return "n/a" if us is None else f"{us:.2f}"


def load_window(argv, srv, timeout):
    """Runs a uco-load with --warmup, pinned; the server's CPU time is read
    when it says "measuring" and "done", so connection set-up and tear-down
    are not charged to the requests.  Returns (CPU ns or None, parsed JSON):
    None when the reads came too far apart from the window (cpu_window)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, preexec_fn=pin(LOAD_CPU))
    t0 = t1 = None
    tail = []
    deadline = time.monotonic() + timeout
    try:
        for line in p.stderr:
            if line.startswith("uco-load: measuring"):
                t0, w0 = srv.cpu_ns(), time.monotonic()
            elif line.startswith("uco-load: done"):
                t1, w1 = srv.cpu_ns(), time.monotonic()
            else:
                tail = (tail + [line.strip()])[-3:]
            if time.monotonic() > deadline:
                raise RuntimeError("uco-load ran past its time")
        out = p.stdout.read()
        rc = p.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    if rc != 0 or t0 is None or t1 is None:
        raise RuntimeError(f"uco-load exited {rc}: {' | '.join(tail)}")
    r = json.loads(out.strip().splitlines()[-1])
    return cpu_window(t1 - t0, w1 - w0, r["duration_s"]), r


def echo_once(build, argv, conns, size, duration, warmup):
    srv = Server(argv + ["--port", "0"])
    try:
        cpu, r = load_window([os.path.join(build, "tools", "uco-load"), "echo",
                                "--port", str(srv.port), "--connections", str(conns),
                                "--size", str(size), "--duration", str(duration),
                                "--warmup", str(warmup), "--json"], srv,
                               timeout=(duration + warmup) * 4 + 60)
    finally:
        status = srv.stop()
    reqs = r["requests"]
    return {
        "rps": r["requests_per_sec"],
        "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"],
        "p999_us": r["latency_us"]["p99_9"], "max_us": r["latency_us"]["max"],
        "errors": r["errors"], "requests": reqs,
        "cpu_us_per_req": cpu / 1e3 / reqs if reqs and cpu is not None else None,
        "server_cpu_s": cpu / 1e9 if cpu is not None else None, "duration_s": r["duration_s"],
        "exit_status": status,
    }


def rounds_order(items, rep):
    """Every other round runs backwards (A B C, C B A, ...): the machine's
    drift then favours no server for coming first in a round."""
    return items if rep % 2 == 0 else items[::-1]


def start_servers(servers, failures):
    """Every server of the list at once, each on its own port: [(name, Server)]."""
    started = []
    for name, _, argv in servers:
        try:
            started.append((name, Server(argv + ["--port", "0"])))
        except Exception as e:  # a server that fails is reported, not hidden
            failures[name].append(str(e))
            log(f"   {name}: FAILED to start: {e}")
    return started


def slice_run(sl, exit_status):
    """One slice of an interleaved run, in the shape of a sequential run."""
    reqs, cpu = sl["requests"], sl["server_cpu_ns"]
    lat = sl["latency_us"]
    return {
        "rps": sl["requests_per_sec"], "p50_us": lat["p50"], "p99_us": lat["p99"],
        "p999_us": lat["p99_9"], "max_us": lat["max"], "errors": sl["errors"],
        "requests": reqs, "cpu_us_per_req": cpu / 1e3 / reqs if reqs and cpu is not None else None,
        "server_cpu_s": cpu / 1e9 if cpu is not None else None,
        "load_cpu_us_per_req": (sl["load_cpu_ns"] / 1e3 / reqs
                                if reqs and sl.get("load_cpu_ns") is not None else None),
        "duration_s": sl["duration_s"], "exit_status": exit_status, "round": sl["cycle"],
        "seq": sl["seq"], "steal_pct": sl.get("steal_pct"),
    }


def echo_interleaved(build, servers, conns, size, cycles, slice_s, settle, warmup):
    """All servers run at once, each with its own connections from one
    uco-load, and take turns of slice_s seconds: cycle after cycle, every
    server gets one turn (every other cycle backwards), and uco's server,
    the reference, one more before each of theirs and one at the end.  So
    every turn of a server has a turn of uco's a fraction of a second
    before and after it, and this VM's drift (30% from one second to the
    next) cancels from their ratio (bench_summary.paired).  Each cycle is
    a round.  Returns ({name: [run]}, {name: [failure]}, {name: errors
    over the whole run})."""
    failures = {name: [] for name, _, _ in servers}
    servers = sorted(servers, key=lambda s: s[0] != REFERENCE)  # the reference first
    started = start_servers(servers, failures)
    runs = {name: [] for name, _, _ in servers}
    errors = {name: 0 for name, _, _ in servers}
    out, statuses = None, {}
    try:
        if started:
            argv = [os.path.join(build, "tools", "uco-load"), "echo",
                    "--port", ",".join(str(s.port) for _, s in started),
                    "--cpu-pid", ",".join(str(s.proc.pid) for _, s in started),
                    "--connections", str(conns), "--size", str(size),
                    "--slice", str(slice_s), "--settle", str(settle),
                    *(["--reference"] if started[0][0] == REFERENCE else []),
                    "--duration", str(slice_s * cycles), "--warmup", str(warmup), "--json"]
            turn = slice_s + settle + 0.05
            timeout = 2 * len(started) * (cycles * turn + warmup + settle) * 4 + 60
            rc, text, err = run_pinned(argv, timeout)
            if rc != 0:
                raise RuntimeError(f"uco-load exited {rc}: {' | '.join(err.splitlines()[-3:])}")
            out = json.loads(text.strip().splitlines()[-1])
    except Exception as e:
        for name, _ in started:
            failures[name].append(str(e))
        log(f"   echo {conns} conns {size} B: interleaved run FAILED: {e}")
    finally:
        statuses = {name: s.stop() for name, s in started}
    if out:
        names = [name for name, _ in started]
        for sl in out["slices"]:
            name = names[sl["target"]]
            runs[name].append(slice_run(sl, statuses[name]))
        for name, t in zip(names, out["targets"]):
            errors[name] = t["errors"]
    return runs, failures, errors


def echo_sequential(build, servers, conns, size, repeats, duration, warmup):
    """One server at a time, a fresh process per run, rounds of every
    server back to back: for loads too large to hold for all servers at
    once (10,000 connections each)."""
    runs = {name: [] for name, _, _ in servers}
    failures = {name: [] for name, _, _ in servers}
    w = warmup if conns < 5000 else 2 * warmup
    if servers:  # the first run after a change of load is slow: discard one
        try:
            echo_once(build, servers[0][2], conns, size, min(duration, 0.5), w)
        except Exception:
            pass  # reported by the counted runs
    for rep in range(repeats):
        for name, _, argv in rounds_order(servers, rep):
            try:
                r = echo_once(build, argv, conns, size, duration, w)
                r["round"] = rep  # runs of one round ran back to back: compare those
                runs[name].append(r)
                log(f"   echo {conns:>5} conns {size:>5} B  run {rep + 1}/{repeats}  {name:<11}"
                    f" {r['rps']:>9.0f} req/s  p99 {r['p99_us']:>6} us"
                    f"  cpu {cpu_text(r['cpu_us_per_req'])} us/req  errors {r['errors']}")
            except Exception as e:  # a server that fails is reported, not hidden
                failures[name].append(str(e))
                log(f"   echo {conns} conns {size} B  {name}: FAILED: {e}")
    errors = {name: sum(r["errors"] for r in rs) for name, rs in runs.items()}
    return runs, failures, errors


INTERLEAVE_MAX_CONNS = 1000  # per server; past that, sequential runs
REFERENCE = "uco"  # every ratio in the report is uco's over another's


def echo_suite(build, servers, configs, plan):
    results = []
    for conns, size in configs:
        if conns <= INTERLEAVE_MAX_CONNS:
            runs, failures, errors = echo_interleaved(build, servers, conns, size, plan["cycles"],
                                                      plan["slice"], plan["settle"],
                                                      plan["warmup"])
            how = {"method": "interleaved", "cycles": plan["cycles"], "slice_s": plan["slice"],
                   "settle_s": plan["settle"]}
        else:
            runs, failures, errors = echo_sequential(build, servers, conns, size,
                                                     plan["repeats"], plan["duration"],
                                                     plan["warmup"])
            how = {"method": "sequential", "repeats": plan["repeats"],
                   "duration_s": plan["duration"]}
        for name, label, _ in servers:
            rs = runs[name]
            e = {
                "server": name, "label": label, "connections": conns, "size": size,
                "runs": rs, "failures": failures[name], **how,
                **{k: stats([r.get(k) for r in rs]) for k in
                   ("rps", "p50_us", "p99_us", "p999_us", "cpu_us_per_req",
                    "load_cpu_us_per_req")},
                "errors": errors[name],
            }
            results.append(e)
            if e["rps"] and how["method"] == "interleaved":
                cpu = (e["cpu_us_per_req"] or {}).get("median") or 0
                log(f"   echo {conns:>5} conns {size:>5} B  {name:<11}"
                    f" {e['rps']['median']:>9.0f} req/s  p99 {e['p99_us']['median']:>6} us"
                    f"  cpu {cpu:.2f} us/req  errors {e['errors']}  (median of {len(rs)} turns)")
    return results


# ---- file server against nginx ----------------------------------------------

NGINX_CONF = """worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def wrk_parse(text):
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        lat[pct] = float(val) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    reqs = int(re.search(r"(\d+) requests in", text).group(1))
    return rps, lat, errors, reqs


def http_once(srv, path, conns, duration):
    url = f"http://127.0.0.1:{srv.port}/{path}"
    t0 = srv.cpu_ns()
    rc, out, err = run_pinned(["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency", url],
                              timeout=duration * 4 + 60)
    t1 = srv.cpu_ns()
    if rc != 0:
        raise RuntimeError(f"wrk exited {rc}: {err.strip()[-300:]}")
    rps, lat, errors, reqs = wrk_parse(out)
    return {"rps": rps, "p50_us": lat.get("50"), "p99_us": lat.get("99"), "errors": errors,
            "requests": reqs, "cpu_us_per_req": (t1 - t0) / 1e3 / reqs if reqs else None}


def start_http(name, build, root, tmp):
    if name == "uco":
        return Server([os.path.abspath(os.path.join(build, "examples", "file_server")),
                       "--root", root, "--port", "0", "--host", "127.0.0.1",
                       "--max-conns", "100000"])
    port = free_port()
    d = tempfile.mkdtemp(dir=tmp)
    os.chmod(d, 0o755)
    os.makedirs(os.path.join(d, "tmp"))
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=d, port=port, root=root))
    return Server([NGINX, "-c", conf, "-p", d], port=port, ready_line=False)


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def http_suite(build, configs, repeats, duration, tmp):
    if not shutil.which("wrk"):
        return [], {"http": "wrk is not installed (tools/deps.sh bench installs it)"}
    names = ["uco"]
    skipped = {}
    if os.access(NGINX, os.X_OK):
        names.append("nginx")
    else:
        skipped["nginx"] = "nginx is not installed (tools/deps.sh bench installs nginx-light)"
    os.chmod(tmp, 0o755)  # nginx's worker runs as www-data and must read the files
    root = os.path.join(tmp, "www")
    os.makedirs(root, exist_ok=True)
    for fname, size in (("1k.bin", 1024), ("1m.bin", 1 << 20)):
        with open(os.path.join(root, fname), "wb") as f:
            f.write(os.urandom(size))
        os.chmod(os.path.join(root, fname), 0o644)
    results = []
    for path, conns in configs:
        runs = {n: [] for n in names}
        failures = {n: [] for n in names}
        for rep in range(repeats):
            for n in rounds_order(names, rep):
                try:
                    srv = start_http(n, build, root, tmp)
                    try:
                        r = http_once(srv, path, conns, duration)
                    finally:
                        r_status = srv.stop()
                    r["exit_status"] = r_status
                    r["round"] = rep
                    runs[n].append(r)
                    log(f"   http {path:<7} {conns:>4} conns run {rep + 1}/{repeats}  {n:<6}"
                        f" {r['rps']:>9.0f} req/s  p99 {r['p99_us'] or 0:>8.0f} us"
                        f"  cpu {cpu_text(r['cpu_us_per_req'])} us/req  errors {r['errors']}")
                except Exception as e:
                    failures[n].append(str(e))
                    log(f"   http {path} {n}: FAILED: {e}")
        for n in names:
            rs = runs[n]
            results.append({"server": n, "path": path, "connections": conns, "runs": rs,
                            "failures": failures[n],
                            **{k: stats([r[k] for r in rs]) for k in
                               ("rps", "p50_us", "p99_us", "cpu_us_per_req")},
                            "errors": sum(r["errors"] for r in rs)})
    return results, skipped


def machine():
    """CPU model, memory and OS, for saying where the figures were taken."""
    def grep(path, key, sep):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(sep, 1)[1].strip().strip('"')
        except OSError:
            pass
        return None
    mem = grep("/proc/meminfo", "MemTotal:", ":")
    parts = [grep("/proc/cpuinfo", "model name", ":"), f"{NCPU} CPUs",
             f"{int(mem.split()[0]) / 2**20:.0f} GiB" if mem else None,
             grep("/etc/os-release", "PRETTY_NAME=", "=")]
    return ", ".join(p for p in parts if p)


def git_commit():
    """The source the binaries were built from, as git describes it."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---- main --------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", required=True)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated echo servers, 'http' for the file servers")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--cycles", type=int)
    ap.add_argument("--slice", type=float)
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    repeats = a.repeats or 5
    duration = a.duration or (5 if a.full else 0.4)
    warmup = 1 if a.full else 0.2
    # Interleaved turns: quick 12 cycles of 0.1 s (1.2 s counted per server,
    # 12 pairs of turns against uco's), FULL 32 of 0.5 s (some pairs leave
    # the ratios for steal); sequential runs (10,000 connections) as before.
    plan = {"cycles": a.cycles or (32 if a.full else 12), "slice": a.slice or (0.5 if a.full else 0.1),
            "settle": 0.1 if a.full else 0.03, "warmup": warmup,
            "repeats": repeats, "duration": duration}
    echo_cfg = [(50, 64), (1000, 64), (50, 4096), (1000, 4096)]
    if a.full:
        echo_cfg += [(10000, 64), (10000, 4096)]
    http_cfg = [("1k.bin", 50), ("1m.bin", 50)]
    if a.full:
        http_cfg += [("1k.bin", 1000)]

    placement = (f"server pinned to CPU {SERVER_CPU}, load generator pinned to CPU {LOAD_CPU}"
                 if SERVER_CPU is not None else "one CPU: server and load generator share it")
    log(f"== macro benchmarks: {placement}; echo up to {INTERLEAVE_MAX_CONNS} connections: all "
        f"servers at once, {plan['cycles']} cycles of {plan['slice']} s turns; beyond that and "
        f"http: {repeats} interleaved runs of {duration} s each ==")
    log("== echo servers ==")
    servers, skipped = find_echo_servers(a.build, only)
    echo = echo_suite(a.build, servers, echo_cfg, plan)
    http, http_skipped = [], {}
    if not only or "http" in only:
        log("== file server against nginx (wrk) ==")
        with tempfile.TemporaryDirectory(prefix="uco-bench-") as tmp:
            http, http_skipped = http_suite(a.build, http_cfg, repeats, duration, tmp)
    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
        "commit": git_commit(),
        "cpus": NCPU, "kernel": os.uname().release, "placement": placement,
        "machine": machine(),
        "repeats": repeats, "duration_s": duration, "warmup_s": warmup, "full": a.full,
        "echo_plan": plan, "interleave_max_conns": INTERLEAVE_MAX_CONNS,
        "load_generators": {"echo": "uco-load (build/tools/uco-load)", "http": "wrk -t1"},
        "echo": echo, "http": http, "skipped": {**skipped, **http_skipped},
    }
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
    log(f"== macro results: {a.out} ==")


if __name__ == "__main__":
    sys.exit(main())
