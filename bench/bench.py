#!/usr/bin/env python3
"""The benchmark driver behind bench/run (issue 6). See docs/performance.md.

Builds the victims and packages it needs (bench/gen.py, bench/victim.c) in a work
directory, measures, prints a table, writes bench/results/<date>.json and draws
bench/results/<date>.png with gnuplot. Every victim and tool it starts is killed on every
way out (exceptions, SIGINT, SIGTERM, SIGHUP; victims also die with their parent through
PR_SET_PDEATHSIG)."""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen  # noqa: E402

FUNCS = [1, 10, 100, 1000]
THREADS = [1, 8, 64, 1000]
LIBS = 18  # + libc + ld.so = 20 mapped libraries
VERIFY_PATCHES, VERIFY_FUNCS = 10, 1000  # 10,000 sites

CHILDREN = set()  # every Popen still alive: killed on exit


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def kill_children():
    for p in list(CHILDREN):
        try:
            p.kill()
            p.wait(timeout=10)
        except Exception:
            pass
        CHILDREN.discard(p)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------- statistics


def summary(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "max": max(vals), "min": min(vals), "n": len(vals)}


def med(s):
    return None if s is None else s["median"]


def cpu_busy(interval=1.0):
    """The fraction of the machine's CPU time (all cores; steal counted as busy) used over
    `interval` seconds, from /proc/stat."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle

    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 1 - (i1 - i0) / max(t1 - t0, 1)


# ---------------------------------------------------------------- processes


class Tool:
    """Runs one tool, timed from fork/exec to exit; parses its JSON document."""

    def __init__(self, hp_bin):
        self.bin = hp_bin
        for t in ("hp-pack", "hp-apply", "hp-verify", "hp-check"):
            if not os.access(os.path.join(hp_bin, t), os.X_OK):
                raise BenchError(f"{hp_bin}/{t} is missing: build the tools first (bench/run does)")

    def run(self, tool, args, timeout=180, check=True, prefix=()):
        argv = list(prefix) + [os.path.join(self.bin, tool)] + [str(a) for a in args]
        t0 = time.perf_counter_ns()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        CHILDREN.add(p)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise BenchError(f"{tool} did not finish in {timeout} s: {' '.join(argv[1:])[:200]}")
        finally:
            CHILDREN.discard(p)
        wall_ms = (time.perf_counter_ns() - t0) / 1e6
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        if check and (p.returncode != 0 or doc is None or not doc.get("ok")):
            msg = (doc or {}).get("error", {}).get("message") if isinstance(doc, dict) else None
            raise BenchError(f"{tool} {' '.join(str(a) for a in args)[:160]} exited {p.returncode}: "
                             f"{msg or err.decode(errors='replace')[-400:]}")
        return {"rc": p.returncode, "doc": doc, "wall_ms": wall_ms, "stderr": err.decode(errors="replace")}


class Victim:
    """A running bench victim: THREADS threads, one worker loop answering requests."""

    def __init__(self, exe, threads, ready_timeout=30):
        argv = [exe, str(threads)]
        self.threads = threads
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  bufsize=0)
        CHILDREN.add(self.p)
        self.pid = self.p.pid
        self.buf = b""
        try:
            line = self.readline(ready_timeout)
            if not line.startswith("ready "):
                raise BenchError(f"victim {exe} said {line!r}")
            self.nfunc = int(line.split()[2])
            self.wait_blocked(ready_timeout)
        except BaseException:
            self.kill()
            raise

    def readline(self, timeout=60):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"victim {self.pid} did not answer within {timeout} s")
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    err = self.p.stderr.read(2000) if self.p.poll() is not None else b""
                    raise BenchError(f"victim {self.pid} exited ({self.p.poll()}): {err.decode(errors='replace')}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def ask(self, req, timeout=60):
        self.p.stdin.write((req + "\n").encode())
        self.p.stdin.flush()
        return self.readline(timeout)

    def wait_blocked(self, timeout):
        """Until the THREADS-1 extra threads sleep in their system calls."""
        deadline = time.monotonic() + timeout
        while True:
            sleeping = 0
            for tid in os.listdir(f"/proc/{self.pid}/task"):
                try:
                    with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                        st = f.read().rsplit(")", 1)[1].split()[0]
                except OSError:
                    continue
                sleeping += st == "S"
            if sleeping >= self.threads - 1:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"victim {self.pid}: only {sleeping} of {self.threads - 1} threads blocked")
            time.sleep(0.01)

    def reset(self):
        if self.ask("reset") != "ok":
            raise BenchError("victim: reset")

    def gap(self):
        """The window's longest gap (us), iterations, gaps over 50 us, their sum (us)."""
        f = self.ask("gap").split()
        return {"max_us": int(f[1]) / 1000, "iterations": int(f[2]), "over_50us": int(f[3]),
                "sum_over_us": int(f[4]) / 1000, "window_us": int(f[5]) / 1000}

    def check(self):
        f = self.ask("check").split()
        return int(f[1]), int(f[2]), int(f[3])

    def expect(self, new, what):
        n, o, x = self.check()
        if n != new or x != 0 or n + o != self.nfunc:
            raise BenchError(f"victim {self.pid} after {what}: {n} functions new, {o} old, {x} neither "
                             f"(expected {new} new)")

    def idle_gap(self, seconds):
        self.reset()
        time.sleep(seconds)
        return self.gap()

    def kill(self):
        try:
            self.p.kill()
            self.p.wait(timeout=10)
        except Exception:
            pass
        CHILDREN.discard(self.p)


# ---------------------------------------------------------------- building


class Build:
    """Victims, patches and packages in the work directory, made once."""

    def __init__(self, work, tool):
        self.work = work
        self.tool = tool
        self.packages = {}
        os.makedirs(work, exist_ok=True)

    def path(self, name):
        return os.path.join(self.work, name)

    def write(self, name, text):
        p = self.path(name)
        old = None
        if os.path.exists(p):
            with open(p) as f:
                old = f.read()
        if old != text:
            with open(p, "w") as f:
                f.write(text)
        return p

    def cc(self, out, srcs, flags):
        out = self.path(out)
        if os.path.exists(out) and all(os.path.getmtime(s) <= os.path.getmtime(out) for s in srcs):
            return out
        cmd = ["gcc", "-O2", "-g"] + flags + ["-o", out] + srcs
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(cmd)[:200]}: {r.stderr[-2000:]}")
        return out

    def victim(self, n, libs=0):
        name = f"v{n}" + (f"-libs{libs}" if libs else "")
        funcs = self.write(f"funcs_{name}.c", gen.funcs_c(n, libs))
        flags = ["-pthread"]
        if libs:
            for k in range(libs):
                src = self.write(f"benchlib{k}.c", gen.lib_c(k))
                self.cc(f"libbenchlib{k}.so", [src], ["-shared", "-fPIC"])
            flags += ["-Wl,--no-as-needed", f"-L{self.work}", "-Wl,-rpath,$ORIGIN"] + [f"-lbenchlib{k}" for k in range(libs)]
        return self.cc(name, [os.path.join(HERE, "victim.c"), funcs], flags + ["-ldl"])

    def patch(self, n, start=0, libc=False):
        name = f"p{n}" + (f"-at{start}" if start else "") + ("-libc" if libc else "")
        src = self.write(f"{name}.c", gen.patch_c(n, libc=libc, start=start))
        return self.cc(f"{name}.so", [src], ["-shared", "-fPIC"])

    def package(self, pid_id, so, exe, names):
        """Packs `names` (functions f -> f_v2) of `exe` from `so` under id `pid_id`."""
        if pid_id in self.packages:
            return self.packages[pid_id]
        out = self.path(f"{pid_id}.hpk")
        args = [so, "--target", exe]
        for f in names:
            args += ["--replace", f"{f}={f}_v2"]
        r = self.tool.run("hp-pack", args + ["--id", pid_id, "-o", out])
        info = {"path": out, "id": pid_id, "size": r["doc"]["size"],
                "payload_size": r["doc"]["manifest"]["payload"]["size"], "functions": len(names)}
        self.packages[pid_id] = info
        return info


# ---------------------------------------------------------------- measurements


class Bench:
    def __init__(self, args, tool, build):
        self.a = args
        self.tool = tool
        self.b = build
        self.runs = args.runs
        self.mode = args.consistency
        self.serial = 0
        self.quiet_log = []
        self.wait_budget = args.wait_budget  # seconds of waiting for quiet left in this run

    def quiet(self, label):
        """On a shared machine, waits (at most --wait-quiet seconds) until others use less
        than a quarter of the CPU before a block of measurements; logs what it saw."""
        t0 = time.monotonic()
        limit = min(self.a.wait_quiet, self.wait_budget)
        busy = cpu_busy(0.5)
        while busy > 0.25 and time.monotonic() - t0 < limit:
            time.sleep(2)
            busy = cpu_busy(1.0)
        waited = time.monotonic() - t0
        self.wait_budget = max(0.0, self.wait_budget - waited)
        self.quiet_log.append({"before": label, "cpu_busy": round(busy, 3), "waited_s": round(waited, 1)})
        if busy > 0.25:
            log(f"  (the machine is busy: {busy:.0%} of its CPU used by others before {label})")

    def fresh_id(self, prefix):
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def apply(self, v, pkg, timeout_ms=60000, prefix=()):
        return self.tool.run("hp-apply", ["-p", v.pid, "--allow-unsigned", "--consistency", self.mode,
                                          "--timeout", timeout_ms, pkg["path"]], prefix=prefix)

    def revert(self, v, pkg_id, timeout_ms=60000):
        return self.tool.run("hp-apply", ["-p", v.pid, "--revert", pkg_id, "--consistency", self.mode,
                                          "--timeout", timeout_ms])

    def cycle(self, v, make_pkg, state, idle=True, prefix=()):
        """One measured apply (with the victim's view and an idle window of the same
        length), then an unmeasured-for-goals revert. `state['pkg']` is re-packed under
        a new id when a revert leaves the code mapped (the id cannot be reused then)."""
        pkg = state.get("pkg") or make_pkg(self.fresh_id(state["prefix"]))
        state["pkg"] = pkg
        v.reset()
        r = self.apply(v, pkg, prefix=prefix)
        gap = v.gap()
        v.expect(pkg["functions"], "apply")
        t = r["doc"]["timings"]
        rec = r["doc"]["record"]
        sample = {"wall_ms": r["wall_ms"], "plan_us": t["plan_us"], "prepare_us": t["prepare_us"],
                  "switch_us": t["switch_us"], "freeze_us": t["freeze_us"], "total_us": t["total_us"],
                  "attempts": t["attempts"], "gap_us": gap["max_us"], "gaps_over_50us": gap["over_50us"],
                  "stalled_us": gap["sum_over_us"],
                  "mapped_bytes": sum(int(m["end"], 16) - int(m["start"], 16) for m in rec["mappings"])}
        if idle:
            ig = v.idle_gap(r["wall_ms"] / 1000)
            sample["idle_gap_us"] = ig["max_us"]
            sample["idle_stalled_us"] = ig["sum_over_us"]
        rv = self.revert(v, pkg["id"])
        v.expect(0, "revert")
        sample["revert_wall_ms"] = rv["wall_ms"]
        sample["revert_freeze_us"] = rv["doc"]["timings"]["freeze_us"]
        if not rv["doc"].get("unmapped", True):
            state["pkg"] = None  # kept mapped: the next apply needs another id
            sample["revert_kept_mapped"] = rv["doc"].get("kept_mapped_because", "")
        return sample

    @staticmethod
    def summarize(samples, keys):
        return {k: summary([s.get(k) for s in samples]) for k in keys}

    # 1 + 2: freeze (tool and victim) and wall, per package size and thread count
    def freeze_matrix(self):
        out = []
        for n in self.a.funcs:
            exe = self.b.victim(n)
            so = self.b.patch(n)
            names = [f"f{i}" for i in range(n)]
            for threads in self.a.threads:
                log(f"freeze: {n} functions, {threads} threads ...")
                self.quiet(f"freeze {n}/{threads}")
                v = Victim(exe, threads)
                try:
                    state = {"prefix": f"m{n}t{threads}"}
                    make = lambda pid_id: self.b.package(pid_id, so, exe, names)  # noqa: E731
                    self.cycle(v, make, state)  # warm-up, not counted
                    samples = [self.cycle(v, make, state) for _ in range(self.runs)]
                finally:
                    v.kill()
                cell = {"functions": n, "threads": threads, "runs": len(samples),
                        "payload_size": state["pkg"]["payload_size"] if state.get("pkg") else None}
                cell.update(self.summarize(samples, ["freeze_us", "gap_us", "idle_gap_us", "wall_ms", "plan_us",
                                                     "prepare_us", "switch_us", "total_us", "attempts",
                                                     "gaps_over_50us", "stalled_us", "idle_stalled_us",
                                                     "revert_wall_ms", "revert_freeze_us"]))
                cell["reverts_kept_mapped"] = sum(1 for s in samples if "revert_kept_mapped" in s)
                cell["samples"] = samples
                log(f"  tool freeze {med(cell['freeze_us']):.0f} us (max {cell['freeze_us']['max']:.0f}), "
                    f"victim gap {med(cell['gap_us']):.0f} us (idle {med(cell['idle_gap_us']):.0f}), "
                    f"wall {med(cell['wall_ms']):.1f} ms, attempts max {cell['attempts']['max']}")
                out.append(cell)
        return out

    # 2b: a one-function package that needs libc's symbols, 20 mapped libraries
    def libc_wall(self):
        log("wall: a one-function package using libc symbols, 20 mapped libraries ...")
        exe = self.b.victim(1, libs=LIBS)
        so = self.b.patch(1, libc=True)
        self.quiet("libc")
        v = Victim(exe, 8)
        try:
            libs = set()
            with open(f"/proc/{v.pid}/maps") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 6 and ".so" in os.path.basename(parts[5]):
                        libs.add(parts[5])
            state = {"prefix": "libc"}
            make = lambda pid_id: self.b.package(pid_id, so, exe, ["f0"])  # noqa: E731
            self.cycle(v, make, state, idle=False)
            samples = [self.cycle(v, make, state, idle=False) for _ in range(self.runs)]
        finally:
            v.kill()
        res = {"mapped_libraries": len(libs), "runs": len(samples),
               "payload_symbols": self.undefined_symbols(so)}
        res.update(self.summarize(samples, ["wall_ms", "plan_us", "prepare_us", "switch_us", "freeze_us",
                                            "total_us", "attempts"]))
        res["samples"] = samples
        log(f"  wall {med(res['wall_ms']):.1f} ms (plan {med(res['plan_us']):.0f} us) with {len(libs)} libraries")
        return res

    # 2d: the same apply with hp-apply under SCHED_FIFO (chrt -f 10), alternating
    def sched(self):
        """On a busy machine the tool waits for a CPU after every ptrace stop it waits for
        (the scheduler's slice, ~4 ms here); a real-time policy for the tool removes that
        wait. Alternates default and chrt -f 10 run by run on one victim (1 function, 8
        threads). Needs CAP_SYS_NICE; skipped without chrt or the right."""
        if not shutil.which("chrt") or subprocess.run(["chrt", "-f", "10", "true"], capture_output=True).returncode:
            log("sched: skipped (chrt -f not allowed here)")
            return None
        log("sched: hp-apply under chrt -f 10 vs the default policy, 1 function, 8 threads ...")
        exe, so = self.b.victim(1), self.b.patch(1)
        self.quiet("sched")
        busy_before = self.quiet_log[-1]["cpu_busy"]
        v = Victim(exe, 8)
        out = {"default": [], "fifo": []}
        try:
            state = {"prefix": "sched"}
            make = lambda pid_id: self.b.package(pid_id, so, exe, ["f0"])  # noqa: E731
            self.cycle(v, make, state, idle=False)
            for _ in range(self.runs):
                out["default"].append(self.cycle(v, make, state, idle=False))
                out["fifo"].append(self.cycle(v, make, state, idle=False, prefix=["chrt", "-f", "10"]))
        finally:
            v.kill()
        res = {"cpu_busy_before": busy_before, "runs": self.runs}
        for k, samples in out.items():
            res[k] = self.summarize(samples, ["freeze_us", "gap_us", "wall_ms", "prepare_us", "switch_us"])
        log(f"  default: freeze {med(res['default']['freeze_us']) / 1e3:.2f} ms, wall {med(res['default']['wall_ms']):.0f} ms;"
            f" chrt -f 10: freeze {med(res['fifo']['freeze_us']) / 1e3:.2f} ms, wall {med(res['fifo']['wall_ms']):.0f} ms")
        return res

    # 2c: what every run pays before planning: exec and dynamic linking, reading the package
    def startup(self):
        log("startup: hp-apply --version, and --dry-run of a one-function package ...")
        self.quiet("startup")
        version = [self.tool.run("hp-apply", ["--version"], check=False)["wall_ms"] for _ in range(self.runs)]
        true = []  # the floor: the same fork/exec/wait of a program that does nothing
        for _ in range(self.runs):
            t0 = time.perf_counter_ns()
            subprocess.run(["/bin/true"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            true.append((time.perf_counter_ns() - t0) / 1e6)
        exe = self.b.victim(1)
        pkg = self.b.package("dry1", self.b.patch(1), exe, ["f0"])
        v = Victim(exe, 8)
        try:
            dry = [self.tool.run("hp-apply", ["-p", v.pid, "--allow-unsigned", "--dry-run", pkg["path"]])
                   for _ in range(self.runs)]
        finally:
            v.kill()
        res = {"true_wall_ms": summary(true), "version_wall_ms": summary(version), "dry_run_wall_ms": summary([d["wall_ms"] for d in dry]),
               "dry_run_plan_us": summary([d["doc"]["timings"]["plan_us"] for d in dry])}
        log(f"  /bin/true {med(res['true_wall_ms']):.1f} ms; --version {med(res['version_wall_ms']):.1f} ms; --dry-run {med(res['dry_run_wall_ms']):.1f} ms "
            f"(plan {med(res['dry_run_plan_us']) / 1000:.1f} ms)")
        return res

    @staticmethod
    def undefined_symbols(so):
        r = subprocess.run(["nm", "-D", "--undefined-only", so], capture_output=True, text=True)
        return sorted(line.split()[-1] for line in r.stdout.splitlines() if line.split()[:1] == ["U"])

    # 3: per-call cost through the patched entry vs the replacement called directly
    def overhead(self):
        """The victim times N calls through one loop (call *reg): of f0 (after the apply a
        jump to its replacement) and of the replacement itself at the address the record
        gives, the same bytes at the same address; likewise for work (24 multiplies). Before
        the apply both sides call the original: an A/A control of the method's noise.
        Several victims, since each start places code differently (ASLR) and a tight loop
        of 2-instruction calls is sensitive to where its branches land."""
        log("per-call overhead ...")
        exe = self.b.victim(1)
        so = self.b.patch(1)
        calls = self.a.calls
        instances = 2 if self.a.quick else 5
        rounds = max((2 * self.runs) // instances, 3)
        self.quiet("overhead")
        before, after, per_instance = [], [], []

        def measure(v, direct_f0, direct_work):
            if v.ask(f"direct {direct_f0:x} {direct_work:x}") != "ok":
                raise BenchError("victim: direct")
            v.p.stdin.write(f"overhead {calls} {rounds + 1}\n".encode())
            v.p.stdin.flush()
            rows = []
            while True:
                line = v.readline(timeout=600)
                if line == "end":
                    break
                if not line.startswith("r "):
                    raise BenchError(f"victim: {line}")
                rows.append([int(x) / calls for x in line.split()[1:]])
            return rows[1:]  # the first round warms up

        pkg = self.b.package("ovh", so, exe, ["f0", "work"])
        for _ in range(instances):
            v = Victim(exe, 1)
            try:
                f = v.ask("addr").split()
                b = measure(v, int(f[1], 16), int(f[3], 16))
                r = self.apply(v, pkg)
                v.expect(1, "apply")
                repl = {s["function"]: int(s["replacement"], 16) for s in r["doc"]["record"]["sites"]}
                a = measure(v, repl["f0"], repl["work"])
                self.revert(v, "ovh")
            finally:
                v.kill()
            before += b
            after += a
            per_instance.append({k: statistics.median(row[pi] / row[di] for row in a)
                                 for k, (pi, di) in {"tiny": (0, 1), "work": (2, 3)}.items()})

        def side(rows, i):
            return summary([r[i] for r in rows])

        res = {"calls_per_round": calls, "rounds": len(after), "victims": instances}
        for name, (pi, di) in {"tiny": (0, 1), "work": (2, 3)}.items():
            patched, direct = side(after, pi), side(after, di)
            per_round = summary([r[pi] / r[di] for r in after])
            control = summary([r[pi] / r[di] for r in before])
            res[name] = {
                "patched_ns": patched, "direct_ns": direct, "original_ns": side(before, pi),
                # each round times both sides back to back: the median of the rounds' ratios
                # is robust against the machine's speed drifting between rounds
                "ratio": per_round["median"], "ratio_per_round": per_round,
                "ratio_per_victim": [x[name] for x in per_instance],
                "ratio_of_medians": patched["median"] / direct["median"],
                "control_ratio_before_apply": control["median"], "control_per_round": control,
            }
            log(f"  {name}: patched {patched['median']:.3f} ns, direct {direct['median']:.3f} ns, "
                f"ratio {res[name]['ratio']:.3f} (per victim "
                f"{', '.join(f'{x:.3f}' for x in res[name]['ratio_per_victim'])}; A/A control before the apply: "
                f"{res[name]['control_ratio_before_apply']:.3f})")
        return res

    @staticmethod
    def memory_of(pid):
        """Rss in all, Anonymous, Rss of the patch's mappings, Rss of the file pages of
        file mappings and the vDSO (page cache or kernel pages shared with every process
        that maps them: no memory of its own) and the bytes mapped, from /proc/PID/smaps."""
        m = {"rss": 0, "anon": 0, "patch": 0, "file_shared": 0, "mapped": 0}
        kind = None
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    parts = line.split()
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    m["mapped"] += hi - lo
                    path = parts[5] if len(parts) > 5 else ""
                    kind = ("patch" if "hotpatch:" in line else
                            "file" if path.startswith("/") or path in ("[vdso]", "[vvar]") else "other")
                    rss = 0
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                    m["rss"] += rss
                    if kind == "patch":
                        m["patch"] += rss
                elif line.startswith("Anonymous:"):
                    anon = int(line.split()[1]) * 1024
                    m["anon"] += anon
                    if kind == "file":
                        m["file_shared"] += rss - anon
        return m

    def memory(self):
        out = []
        for n in self.a.funcs:
            log(f"memory: {n} functions ...")
            exe = self.b.victim(n)
            so = self.b.patch(n)
            pkg = self.b.package(f"mem{n}", so, exe, [f"f{i}" for i in range(n)])
            samples = []
            self.quiet(f"memory {n}")
            for _ in range(self.runs):
                v = Victim(exe, 8)
                try:
                    time.sleep(0.05)
                    m0 = self.memory_of(v.pid)
                    self.apply(v, pkg)
                    v.expect(n, "apply")
                    m1 = self.memory_of(v.pid)
                finally:
                    v.kill()
                samples.append({"rss_added": m1["rss"] - m0["rss"], "rss_patch_mapping": m1["patch"],
                                "private_added": (m1["rss"] - m1["file_shared"]) - (m0["rss"] - m0["file_shared"]),
                                "rss_file_shared_added": m1["file_shared"] - m0["file_shared"],
                                "mapped_added": m1["mapped"] - m0["mapped"]})
            cell = {"functions": n, "payload_size": pkg["payload_size"], "package_size": pkg["size"],
                    "runs": len(samples)}
            cell.update(self.summarize(samples, ["rss_added", "rss_patch_mapping", "private_added",
                                                 "rss_file_shared_added", "mapped_added"]))
            cell["rss_added_beyond_payload"] = cell["rss_added"]["median"] - pkg["payload_size"]
            cell["private_added_beyond_payload"] = cell["private_added"]["median"] - pkg["payload_size"]
            cell["mapped_added_beyond_payload"] = cell["mapped_added"]["median"] - pkg["payload_size"]
            log(f"  RSS +{cell['rss_added']['median'] / 1024:.0f} KiB (private +{cell['private_added']['median'] / 1024:.0f}"
                f" KiB), mapped +{cell['mapped_added']['median'] / 1024:.0f} KiB, payload "
                f"{pkg['payload_size'] / 1024:.1f} KiB")
            out.append(cell)
        return out

    # 5: hp-verify over 10,000 sites, hp-check of one process
    def verify_check(self):
        n = self.a.verify_patches * VERIFY_FUNCS
        log(f"verify: {self.a.verify_patches} patches x {VERIFY_FUNCS} functions = {n} sites ...")
        exe = self.b.victim(n)
        self.quiet("verify")
        v = Victim(exe, 8)
        res = {}
        try:
            applies = []
            for j in range(self.a.verify_patches):
                so = self.b.patch(VERIFY_FUNCS, start=j * VERIFY_FUNCS)
                pkg = self.b.package(f"vf{n}-{j}", so, exe,
                                     [f"f{i}" for i in range(j * VERIFY_FUNCS, (j + 1) * VERIFY_FUNCS)])
                r = self.apply(v, pkg)
                applies.append({"wall_ms": r["wall_ms"], "freeze_us": r["doc"]["timings"]["freeze_us"]})
            v.expect(n, "the applies")
            walls, sites = [], None
            for _ in range(self.runs):
                r = self.tool.run("hp-verify", ["-p", v.pid])
                walls.append(r["wall_ms"])
                sites = sum(len(p["sites"]) for p in r["doc"]["patches"])
            res["verify"] = {"sites": sites, "patches": self.a.verify_patches, "wall_ms": summary(walls),
                             "applies_of_1000": self.summarize(applies, ["wall_ms", "freeze_us"])}
            walls = [self.tool.run("hp-check", ["-p", v.pid])["wall_ms"] for _ in range(self.runs)]
            res["check_process_10000_sites"] = {"wall_ms": summary(walls)}
        finally:
            v.kill()
        exe = self.b.victim(1)
        pkg = self.b.package("chk1", self.b.patch(1), exe, ["f0"])
        v = Victim(exe, 8)
        try:
            walls = [self.tool.run("hp-check", ["-p", v.pid])["wall_ms"] for _ in range(self.runs)]
            res["check_process"] = {"wall_ms": summary(walls)}
            walls = [self.tool.run("hp-check", ["-p", v.pid, "--allow-unsigned", pkg["path"]])["wall_ms"]
                     for _ in range(self.runs)]
            res["check_process_package"] = {"wall_ms": summary(walls)}
        finally:
            v.kill()
        log(f"  hp-verify {sites} sites: {med(res['verify']['wall_ms']):.1f} ms; hp-check -p: "
            f"{med(res['check_process']['wall_ms']):.1f} ms, with a package "
            f"{med(res['check_process_package']['wall_ms']):.1f} ms")
        return res

    # 6: the same one-function change made by gdb -p PID --batch, side by side
    def gdb(self):
        log("gdb side by side: 1 function, 8 threads ...")
        exe = self.b.victim(1)
        so = self.b.patch(1)
        self.quiet("gdb")
        v = Victim(exe, 8)
        gdb_samples, ours = [], []
        try:
            f = v.ask("addr").split()
            f0, alt0 = int(f[1], 16), int(f[2], 16)
            jump = bytes([0xE9]) + struct.pack("<i", alt0 - (f0 + 5))
            with open(f"/proc/{v.pid}/mem", "rb") as m:
                m.seek(f0)
                orig = m.read(5)

            def gdb_write(b):
                expr = "set {unsigned char[5]}%#x = {%s}" % (f0, ", ".join("%#x" % x for x in b))
                argv = ["gdb", "-q", "-nx", "--batch", "-iex", "set debuginfod enabled off", "-p", str(v.pid),
                        "-ex", expr]
                t0 = time.perf_counter_ns()
                p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
                CHILDREN.add(p)
                try:
                    out, err = p.communicate(timeout=120)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                    CHILDREN.discard(p)
                if p.returncode != 0:
                    raise BenchError(f"gdb exited {p.returncode}: {err.decode(errors='replace')[-500:]}")
                return (time.perf_counter_ns() - t0) / 1e6

            state = {"prefix": "ours"}
            make = lambda pid_id: self.b.package(pid_id, so, exe, ["f0"])  # noqa: E731
            self.cycle(v, make, state, idle=False)
            gdb_write(jump)
            v.expect(1, "gdb's write")
            gdb_write(orig)
            v.expect(0, "gdb's restore")
            for _ in range(self.runs):
                ours.append(self.cycle(v, make, state))
                v.reset()
                wall = gdb_write(jump)
                g = v.gap()
                v.expect(1, "gdb's write")
                ig = v.idle_gap(wall / 1000)
                gdb_write(orig)  # not measured
                v.expect(0, "gdb's restore")
                gdb_samples.append({"wall_ms": wall, "gap_us": g["max_us"], "idle_gap_us": ig["max_us"]})
        finally:
            v.kill()
        res = {"threads": 8, "functions": 1, "runs": len(gdb_samples),
               "gdb": self.summarize(gdb_samples, ["wall_ms", "gap_us", "idle_gap_us"]),
               "ours": self.summarize(ours, ["wall_ms", "gap_us", "freeze_us", "idle_gap_us"]),
               "gdb_version": subprocess.run(["gdb", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
               "gdb_samples": gdb_samples, "ours_samples": ours}
        res["freeze_ratio_victim_view"] = med(res["gdb"]["gap_us"]) / med(res["ours"]["gap_us"])
        res["freeze_ratio_vs_tool_freeze"] = med(res["gdb"]["gap_us"]) / med(res["ours"]["freeze_us"])
        res["wall_ratio"] = med(res["gdb"]["wall_ms"]) / med(res["ours"]["wall_ms"])
        log(f"  gdb: victim gap {med(res['gdb']['gap_us']) / 1000:.1f} ms, wall {med(res['gdb']['wall_ms']):.0f} ms;"
            f" ours: gap {med(res['ours']['gap_us']) / 1000:.2f} ms (tool freeze {med(res['ours']['freeze_us']):.0f} us),"
            f" wall {med(res['ours']['wall_ms']):.0f} ms; ratio {res['freeze_ratio_victim_view']:.0f}x")
        return res


# ---------------------------------------------------------------- profile (--profile)


def profile(args, tool, build, date):
    """For three cases (1 function / 8 threads, 1000 functions / 8 threads, 1 function /
    1000 threads), one apply each under perf record (on-CPU samples with DWARF call
    graphs; callgrind when perf cannot run), under strace -f -w -c (wall time inside each
    system call: where hp-apply waits), and under strace -f -tt -T (the timeline). Text
    reports go to bench/results/<date>-profile/, the raw data (perf.data, the strace
    timeline) to <work>/profile/."""
    outdir = os.path.join(args.results, f"{date}-profile")
    rawdir = os.path.join(args.work, "profile")
    os.makedirs(outdir, exist_ok=True)
    os.makedirs(rawdir, exist_ok=True)
    have_perf = shutil.which("perf") and subprocess.run(["perf", "stat", "-e", "cpu-clock", "true"],
                                                        capture_output=True).returncode == 0
    cases = [(1, 8), (1000, 8), (1, 1000)] if not args.quick else [(1, 8)]
    summary_lines = []
    for n, threads in cases:
        exe, so = build.victim(n), build.patch(n)
        names = [f"f{i}" for i in range(n)]
        base = os.path.join(outdir, f"{n}fn-{threads}thr")
        raw = os.path.join(rawdir, f"{n}fn-{threads}thr")
        v = Victim(exe, threads)
        try:
            for k, what in enumerate(["perf" if have_perf else "callgrind", "strace-wc", "strace-log"]):
                pkg = build.package(f"prof{n}t{threads}k{k}", so, exe, names)
                hp = [os.path.join(tool.bin, "hp-apply"), "-p", str(v.pid), "--allow-unsigned",
                      "--consistency", args.consistency, "--timeout", "60000", pkg["path"]]
                pre = {"perf": ["perf", "record", "-q", "-F", "10000", "--call-graph", "dwarf,16384",
                                "-o", raw + ".perf.data", "--"],
                       "callgrind": ["valgrind", "--tool=callgrind", f"--callgrind-out-file={raw}.callgrind"],
                       "strace-wc": ["strace", "-f", "-w", "-c", "-o", base + ".strace-wall.txt"],
                       "strace-log": ["strace", "-f", "-tt", "-T", "-o", raw + ".strace-log.txt"]}[what]
                p = subprocess.Popen(pre + hp, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                CHILDREN.add(p)
                try:
                    out, err = p.communicate(timeout=600)
                finally:
                    CHILDREN.discard(p)
                try:
                    t = json.loads(out)["timings"]
                except (ValueError, KeyError):
                    t = None
                    log(f"profile: {what} of hp-apply failed: {err.decode(errors='replace')[-300:]}")
                summary_lines.append(f"{n} functions, {threads} threads, under {what}: timings {json.dumps(t)}")
                tool.run("hp-apply", ["-p", v.pid, "--revert", pkg["id"], "--consistency", args.consistency,
                                      "--timeout", 60000], check=False)
        finally:
            v.kill()
        if have_perf:
            for name, extra in (("self", ["--no-children"]), ("children", ["--children"])):
                r = subprocess.run(["perf", "report", "-i", raw + ".perf.data", "--stdio", "--percent-limit", "0.5",
                                    "--sort", "dso,symbol", "-g", "none"] + extra, capture_output=True, text=True)
                with open(f"{base}.perf-{name}.txt", "w") as f:
                    for line in r.stdout.splitlines():  # C++ names pad every line to the longest
                        f.write(line.rstrip()[:300] + "\n")
        else:
            with open(f"{base}.callgrind.txt", "w") as f:
                subprocess.run(["callgrind_annotate", "--inclusive=yes", raw + ".callgrind"], stdout=f,
                               stderr=subprocess.DEVNULL)
        log(f"profile: {n} functions, {threads} threads -> {os.path.relpath(base, ROOT)}.*")
    with open(os.path.join(outdir, "timings.txt"), "w") as f:
        f.write("\n".join(summary_lines) + "\n")


# ---------------------------------------------------------------- report


def machine_info():
    def first(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return ""

    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        debian = ""
    return {"cpu": first("/proc/cpuinfo", "model name"), "cores": os.cpu_count(),
            "memory": first("/proc/meminfo", "MemTotal"), "kernel": platform.release(),
            "debian": debian, "gcc": gcc, "loadavg_at_start": [float(x) for x in load]}


def git_info():
    def g(*a):
        r = subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True)
        return r.stdout.strip()

    return {"commit": g("rev-parse", "HEAD"), "changed_files": g("status", "--porcelain", "--", "lib", "tools").splitlines()}


def goals(res):
    out = []

    def cell(n, t):
        for c in res.get("freeze", []):
            if c["functions"] == n and c["threads"] == t:
                return c
        return None

    def add(goal, value, limit, unit, better="le", note=""):
        if value is None:
            out.append({"goal": goal, "value": None, "limit": limit, "unit": unit, "met": None, "note": "not measured"})
            return
        met = value <= limit if better == "le" else value >= limit
        out.append({"goal": goal, "value": value, "limit": limit, "unit": unit, "met": met, "note": note})

    c = cell(1, 8)
    add("freeze median, 1 function, 8 threads (tool)", med(c["freeze_us"]) / 1000 if c else None, 1, "ms",
        note=f"victim's view {med(c['gap_us']) / 1000:.2f} ms" if c else "")
    c = cell(100, 8)
    add("freeze median, 100 functions, 8 threads (tool)", med(c["freeze_us"]) / 1000 if c else None, 5, "ms",
        note=f"victim's view {med(c['gap_us']) / 1000:.2f} ms" if c else "")
    c = cell(1, 1000)
    add("freeze median, 1 function, 1000 threads (tool)", med(c["freeze_us"]) / 1000 if c else None, 50, "ms",
        note=f"victim's view {med(c['gap_us']) / 1000:.2f} ms" if c else "")
    c = cell(1, 8)
    add("hp-apply wall, 1 function, no outside symbol (8 threads)", med(c["wall_ms"]) if c else None, 10, "ms")
    lw = res.get("libc_wall")
    add("hp-apply wall, 1 function using libc, 20 libraries", med(lw["wall_ms"]) if lw else None, 50, "ms",
        note=f"{lw['mapped_libraries']} libraries mapped" if lw else "")
    ov = res.get("overhead")
    add("per-call overhead ratio (tiny function)", ov["tiny"]["ratio"] if ov else None, 1.05, "x")
    add("per-call overhead ratio (24-multiply function)", ov["work"]["ratio"] if ov else None, 1.05, "x")
    for m in res.get("memory", []):
        add(f"memory added, {m['functions']} function(s): RSS beyond the payload", m["rss_added_beyond_payload"] / 1024,
            64, "KiB", note=f"private memory beyond the payload {m['private_added_beyond_payload'] / 1024:.0f} KiB, "
                            f"mapped {m['mapped_added_beyond_payload'] / 1024:.0f} KiB")
    g = res.get("gdb")
    add("freeze vs gdb -p --batch (victim's view)", g["freeze_ratio_victim_view"] if g else None, 100, "x", better="ge",
        note=f"vs the tool's own freeze {g['freeze_ratio_vs_tool_freeze']:.0f}x" if g else "")
    return out


def fmt(x, unit=""):
    if x is None:
        return "-"
    if isinstance(x, float) and x < 10:
        return f"{x:.2f}{unit}"
    return f"{x:.0f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def print_table(res):
    p = print
    if res.get("freeze"):
        p(f"\nFreeze and wall time, hp-apply --consistency {res['consistency']}, "
          f"median / max over {res['runs']} runs (times in ms)")
        hdr = ["fns", "thr", "freeze", "freeze max", "victim gap", "gap max", "idle gap", "wall", "wall max",
               "plan", "prepare", "switch", "attempts max"]
        p(" ".join(f"{h:>11}" for h in hdr))
        for c in res["freeze"]:
            row = [c["functions"], c["threads"], med(c["freeze_us"]) / 1e3, c["freeze_us"]["max"] / 1e3,
                   med(c["gap_us"]) / 1e3, c["gap_us"]["max"] / 1e3, med(c["idle_gap_us"]) / 1e3, med(c["wall_ms"]),
                   c["wall_ms"]["max"], med(c["plan_us"]) / 1e3, med(c["prepare_us"]) / 1e3,
                   med(c["switch_us"]) / 1e3, c["attempts"]["max"]]
            p(" ".join(f"{fmt(x):>11}" for x in row))
    lw = res.get("libc_wall")
    if lw:
        p(f"\nOne function using libc ({', '.join(lw['payload_symbols'])}), {lw['mapped_libraries']} libraries "
          f"mapped: wall {med(lw['wall_ms']):.1f} ms (max {lw['wall_ms']['max']:.1f}), plan "
          f"{med(lw['plan_us']) / 1e3:.1f} ms, prepare {med(lw['prepare_us']) / 1e3:.1f} ms, switch "
          f"{med(lw['switch_us']) / 1e3:.2f} ms")
    st = res.get("startup")
    if st:
        p(f"Startup: /bin/true {med(st['true_wall_ms']):.1f} ms (the floor of fork/exec/wait here); "
          f"hp-apply --version (exec, dynamic linking): {med(st['version_wall_ms']):.1f} ms; --dry-run of a "
          f"one-function package: {med(st['dry_run_wall_ms']):.1f} ms (plan {med(st['dry_run_plan_us']) / 1e3:.1f} ms)")
    sc = res.get("sched")
    if sc:
        p(f"Same apply (1 function, 8 threads), default policy vs chrt -f 10 (others used {sc['cpu_busy_before']:.0%} "
          f"of the CPU before): freeze {med(sc['default']['freeze_us']) / 1e3:.2f} vs "
          f"{med(sc['fifo']['freeze_us']) / 1e3:.2f} ms, victim gap {med(sc['default']['gap_us']) / 1e3:.2f} vs "
          f"{med(sc['fifo']['gap_us']) / 1e3:.2f} ms, wall {med(sc['default']['wall_ms']):.1f} vs "
          f"{med(sc['fifo']['wall_ms']):.1f} ms")
    ov = res.get("overhead")
    if ov:
        p(f"\nPer-call cost, ns/call, median of {ov['rounds']} rounds of {ov['calls_per_round']} calls "
          f"in {ov.get('victims', 1)} victims")
        for k in ("tiny", "work"):
            o = ov[k]
            p(f"  {k:5}: patched entry {o['patched_ns']['median']:.3f}, replacement direct "
              f"{o['direct_ns']['median']:.3f}, ratio {o['ratio']:.3f} (per victim "
              f"{', '.join(f'{x:.2f}' for x in o.get('ratio_per_victim', []))}; unpatched {o['original_ns']['median']:.3f};"
              f" A/A control before the apply {o['control_ratio_before_apply']:.3f})")
    if res.get("memory"):
        p("\nMemory added to the victim by one apply (8 threads), median over runs, KiB")
        p(f"{'fns':>6} {'payload':>9} {'mapped':>9} {'RSS':>9} {'patch maps':>11} {'shared file':>12} "
          f"{'private':>9} {'RSS-payload':>12} {'private-payload':>16}")
        for m in res["memory"]:
            p(f"{m['functions']:>6} {m['payload_size'] / 1024:>9.1f} {med(m['mapped_added']) / 1024:>9.1f} "
              f"{med(m['rss_added']) / 1024:>9.1f} {med(m['rss_patch_mapping']) / 1024:>11.1f} "
              f"{med(m['rss_file_shared_added']) / 1024:>12.1f} {med(m['private_added']) / 1024:>9.1f} "
              f"{m['rss_added_beyond_payload'] / 1024:>12.1f} {m['private_added_beyond_payload'] / 1024:>16.1f}")
    vc = res.get("verify_check")
    if vc:
        p(f"\nhp-verify of {vc['verify']['sites']} sites: {med(vc['verify']['wall_ms']):.1f} ms "
          f"(max {vc['verify']['wall_ms']['max']:.1f}); hp-check -p: {med(vc['check_process']['wall_ms']):.1f} ms, "
          f"on the 10,000-site process {med(vc['check_process_10000_sites']['wall_ms']):.1f} ms, "
          f"-p with a package {med(vc['check_process_package']['wall_ms']):.1f} ms")
    g = res.get("gdb")
    if g:
        p(f"\ngdb -p PID --batch vs hp-apply, 1 function, 8 threads, median / max over {g['runs']} runs")
        p(f"  gdb : victim gap {med(g['gdb']['gap_us']) / 1e3:.1f} / {g['gdb']['gap_us']['max'] / 1e3:.1f} ms, "
          f"wall {med(g['gdb']['wall_ms']):.0f} / {g['gdb']['wall_ms']['max']:.0f} ms")
        p(f"  ours: victim gap {med(g['ours']['gap_us']) / 1e3:.2f} / {g['ours']['gap_us']['max'] / 1e3:.2f} ms "
          f"(tool freeze {med(g['ours']['freeze_us']) / 1e3:.2f} ms), wall {med(g['ours']['wall_ms']):.0f} / "
          f"{g['ours']['wall_ms']['max']:.0f} ms")
        p(f"  ratio: freeze {g['freeze_ratio_victim_view']:.0f}x shorter (victim's view), "
          f"{g['freeze_ratio_vs_tool_freeze']:.0f}x (tool freeze); wall {g['wall_ratio']:.1f}x shorter")
    if res.get("goals"):
        p("\nGoals (issue 6)")
        for gl in res["goals"]:
            mark = "-" if gl["met"] is None else ("met" if gl["met"] else "NOT MET")
            p(f"  {mark:8} {gl['goal']}: {fmt(gl['value'])} {gl['unit']} "
              f"({'<=' if gl['goal'].find('gdb') < 0 else '>='} {gl['limit']} {gl['unit']}){' - ' + gl['note'] if gl['note'] else ''}")


def markdown(res):
    """The results as Markdown tables (bench/results/<date>.md), for docs/performance.md."""
    out = []
    w = out.append
    m = res["machine"]
    w(f"Run of {res['date']}: {res['runs']} runs per measurement{' (--quick)' if res['quick'] else ''}, "
      f"hp-apply --consistency {res['consistency']}; {m['cpu']}, {m['cores']} cores, {m['memory']}, Linux "
      f"{m['kernel']}, Debian {m['debian']}; load average {m['loadavg_at_start'][0]} at the start, "
      f"{m.get('loadavg_at_end', ['?'])[0]} at the end; {res.get('duration_s', 0):.0f} s.")
    w("")

    def ms(x):
        return "-" if x is None else (f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}")

    if res.get("freeze"):
        w("| functions | threads | freeze (tool) median / max ms | victim's longest gap median / max ms | idle gap "
          "median ms | victim's stalls > 50 us | wall median / max ms | plan ms | prepare ms | switch ms | "
          "attempts max |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in res["freeze"]:
            w(f"| {c['functions']} | {c['threads']} | {ms(med(c['freeze_us']) / 1e3)} / {ms(c['freeze_us']['max'] / 1e3)} "
              f"| {ms(med(c['gap_us']) / 1e3)} / {ms(c['gap_us']['max'] / 1e3)} | {ms(med(c['idle_gap_us']) / 1e3)} "
              f"| {med(c['gaps_over_50us']):.0f} | {ms(med(c['wall_ms']))} / {ms(c['wall_ms']['max'])} "
              f"| {ms(med(c['plan_us']) / 1e3)} "
              f"| {ms(med(c['prepare_us']) / 1e3)} | {ms(med(c['switch_us']) / 1e3)} | {c['attempts']['max']} |")
        w("")
    lw, st = res.get("libc_wall"), res.get("startup")
    if lw or st:
        w("| hp-apply wall time | median ms | max ms |")
        w("|---|---:|---:|")
        if st:
            w(f"| /bin/true, the same fork/exec/wait (the floor) | {ms(med(st['true_wall_ms']))} | "
              f"{ms(st['true_wall_ms']['max'])} |")
            w(f"| hp-apply --version (exec, dynamic linking) | {ms(med(st['version_wall_ms']))} | "
              f"{ms(st['version_wall_ms']['max'])} |")
            w(f"| hp-apply --dry-run, 1 function, 8 threads (plan {ms(med(st['dry_run_plan_us']) / 1e3)} ms) | "
              f"{ms(med(st['dry_run_wall_ms']))} | {ms(st['dry_run_wall_ms']['max'])} |")
        c = next((c for c in res.get("freeze", []) if c["functions"] == 1 and c["threads"] == 8), None)
        if c:
            w(f"| apply, 1 function, no outside symbol, 8 threads | {ms(med(c['wall_ms']))} | {ms(c['wall_ms']['max'])} |")
        if lw:
            w(f"| apply, 1 function using {', '.join(x.split('@')[0] for x in lw['payload_symbols'])}; "
              f"{lw['mapped_libraries']} libraries mapped, 8 threads (plan {ms(med(lw['plan_us']) / 1e3)}, prepare "
              f"{ms(med(lw['prepare_us']) / 1e3)}, switch {ms(med(lw['switch_us']) / 1e3)} ms) | "
              f"{ms(med(lw['wall_ms']))} | {ms(lw['wall_ms']['max'])} |")
        w("")
    sc = res.get("sched")
    if sc:
        w(f"| 1 function, 8 threads, alternating; others used {sc['cpu_busy_before']:.0%} of the CPU before | "
          f"freeze median / max ms | victim's gap median ms | prepare ms | wall median ms |")
        w("|---|---:|---:|---:|---:|")
        for k, label in (("default", "hp-apply"), ("fifo", "chrt -f 10 hp-apply")):
            x = sc[k]
            w(f"| {label} | {ms(med(x['freeze_us']) / 1e3)} / {ms(x['freeze_us']['max'] / 1e3)} | "
              f"{ms(med(x['gap_us']) / 1e3)} | {ms(med(x['prepare_us']) / 1e3)} | {ms(med(x['wall_ms']))} |")
        w("")
    ov = res.get("overhead")
    if ov:
        w(f"| per call (ns), median of {ov['rounds']} rounds of {ov['calls_per_round']} calls in "
          f"{ov.get('victims', 1)} victims | through the patched entry | replacement called directly | ratio "
          f"(median of rounds) | ratio per victim | A/A control before the apply | unpatched original |")
        w("|---|---:|---:|---:|---|---:|---:|")
        for k, label in (("tiny", "x + c (2 instructions)"), ("work", "24 dependent multiplies")):
            o = ov[k]
            w(f"| {label} | {o['patched_ns']['median']:.3f} | {o['direct_ns']['median']:.3f} | {o['ratio']:.3f} "
              f"| {', '.join(f'{x:.2f}' for x in o.get('ratio_per_victim', []))} "
              f"| {o['control_ratio_before_apply']:.3f} | "
              f"{o['original_ns']['median']:.3f} |")
        w("")
    if res.get("memory"):
        w("| functions | payload .so KiB | mapped + KiB | RSS + KiB | of which the patch's mappings | shared file "
          "pages faulted in | private memory + KiB | RSS - payload KiB | private - payload KiB |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for x in res["memory"]:
            w(f"| {x['functions']} | {x['payload_size'] / 1024:.1f} | {med(x['mapped_added']) / 1024:.0f} | "
              f"{med(x['rss_added']) / 1024:.0f} | {med(x['rss_patch_mapping']) / 1024:.0f} | "
              f"{med(x['rss_file_shared_added']) / 1024:.0f} | {med(x['private_added']) / 1024:.0f} | "
              f"{x['rss_added_beyond_payload'] / 1024:.0f} | {x['private_added_beyond_payload'] / 1024:.0f} |")
        w("")
    vc = res.get("verify_check")
    if vc:
        w("| read-only tools | median ms | max ms |")
        w("|---|---:|---:|")
        w(f"| hp-verify -p, {vc['verify']['sites']} sites in {vc['verify']['patches']} patches | "
          f"{ms(med(vc['verify']['wall_ms']))} | {ms(vc['verify']['wall_ms']['max'])} |")
        w(f"| hp-check -p, the same process | {ms(med(vc['check_process_10000_sites']['wall_ms']))} | "
          f"{ms(vc['check_process_10000_sites']['wall_ms']['max'])} |")
        w(f"| hp-check -p, 8 threads, no patch | {ms(med(vc['check_process']['wall_ms']))} | "
          f"{ms(vc['check_process']['wall_ms']['max'])} |")
        w(f"| hp-check -p PACKAGE (1 function) | {ms(med(vc['check_process_package']['wall_ms']))} | "
          f"{ms(vc['check_process_package']['wall_ms']['max'])} |")
        a = vc["verify"]["applies_of_1000"]
        w(f"| (setup: each hp-apply of 1000 functions onto that process; freeze median "
          f"{ms(med(a['freeze_us']) / 1e3)} ms) | {ms(med(a['wall_ms']))} | {ms(a['wall_ms']['max'])} |")
        w("")
    g = res.get("gdb")
    if g:
        w(f"| 1 function, 8 threads, {g['runs']} runs | victim's longest gap median / max ms | idle gap ms | tool "
          f"freeze ms | wall median / max ms |")
        w("|---|---:|---:|---:|---:|")
        w(f"| {g['gdb_version']}, `gdb -p PID --batch -ex 'set {{unsigned char[5]}}ADDR = {{...}}'` | "
          f"{ms(med(g['gdb']['gap_us']) / 1e3)} / {ms(g['gdb']['gap_us']['max'] / 1e3)} | "
          f"{ms(med(g['gdb']['idle_gap_us']) / 1e3)} | - | {ms(med(g['gdb']['wall_ms']))} / {ms(g['gdb']['wall_ms']['max'])} |")
        w(f"| hp-apply | {ms(med(g['ours']['gap_us']) / 1e3)} / {ms(g['ours']['gap_us']['max'] / 1e3)} | "
          f"{ms(med(g['ours']['idle_gap_us']) / 1e3)} | {ms(med(g['ours']['freeze_us']) / 1e3)} | "
          f"{ms(med(g['ours']['wall_ms']))} / {ms(g['ours']['wall_ms']['max'])} |")
        w(f"| ratio gdb / hp-apply | {g['freeze_ratio_victim_view']:.0f}x (vs the tool's freeze "
          f"{g['freeze_ratio_vs_tool_freeze']:.0f}x) | | | {g['wall_ratio']:.1f}x |")
        w("")
    if res.get("goals"):
        w("| goal | measured | limit | |")
        w("|---|---:|---:|---|")
        for gl in res["goals"]:
            mark = "not measured" if gl["met"] is None else ("**met**" if gl["met"] else "**not met**")
            val = "-" if gl["value"] is None else f"{gl['value']:.2f} {gl['unit']}"
            cmp_ = ">=" if "gdb" in gl["goal"] else "<="
            w(f"| {gl['goal']}{' (' + gl['note'] + ')' if gl['note'] else ''} | {val} | {cmp_} {gl['limit']} "
              f"{gl['unit']} | {mark} |")
        w("")
    return "\n".join(out)


GNUPLOT = r"""
set terminal pngcairo size 1500,1000 font "DejaVu Sans,10"
set output '%(png)s'
set multiplot layout 2,2 title "hotpatch benchmarks %(date)s - %(cpu)s, %(cores)s cores, Linux %(kernel)s (medians; bars: max)"
set logscale xy
set xlabel "threads in the victim"
set ylabel "ms"
set key top left
set grid
set xrange [0.7:1500]
set xtics (1, 8, 64, 1000)
set title "Freeze reported by hp-apply (first thread stopped to last resumed)"
plot for [i=0:%(nf)d] '%(dat)s' index i using 2:3:3:4 with yerrorlines lw 2 title columnheader(1)
set title "Freeze as the victim sees it (longest gap of its worker loop); dashed: idle gap"
plot for [i=0:%(nf)d] '%(dat)s' index i using 2:5:5:6 with yerrorlines lw 2 title columnheader(1), \
     for [i=0:%(nf)d] '%(dat)s' index i using 2:7 with lines dt 2 lc i+1 notitle
unset logscale
unset xrange
unset xtics
set xtics rotate by -45
set xlabel ""
set title "hp-apply wall time, end to end (fork/exec to exit), split from .timings"
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.8
set yrange [0:*]
plot '%(wall)s' using 3:xtic(1) title "plan", '' using 4 title "prepare", '' using 5 title "switch", \
     '' using 6 title "rest (exec, read package, detach, output)"
set logscale y
set yrange [0.1:*]
set style data boxes
set style fill solid 0.8 border -1
set boxwidth 0.6
set xtics ("gdb -p --batch\nvictim gap" 0, "hp-apply\nvictim gap" 1, "hp-apply\ntool freeze" 2, "gdb\nwall" 3, "hp-apply\nwall" 4)
set title "The same one-function change, 8 threads: gdb vs hp-apply (%(ratio)s)"
set xrange [-0.6:4.6]
plot '%(gdb)s' using 1:2 with boxes lc rgb "#4477aa" notitle, '' using 1:2:2:3 with yerrorbars lc rgb "black" pt 0 notitle, \
     '' using 1:(column(2)*1.25):(sprintf(column(2) < 10 ? "%%.2f" : "%%.0f", column(2))) with labels notitle
unset multiplot
"""


def plot(res, work, png):
    if not shutil.which("gnuplot") or not res.get("freeze"):
        log("plot: skipped (gnuplot missing or no freeze data)")
        return None
    dat = os.path.join(work, "freeze.dat")
    funcs = sorted({c["functions"] for c in res["freeze"]})
    with open(dat, "w") as f:
        for n in funcs:
            f.write(f'"{n} function{"s" if n > 1 else ""}"\n')
            for c in res["freeze"]:
                if c["functions"] == n:
                    f.write(f"{n} {c['threads']} {med(c['freeze_us']) / 1e3} {c['freeze_us']['max'] / 1e3} "
                            f"{med(c['gap_us']) / 1e3} {c['gap_us']['max'] / 1e3} {med(c['idle_gap_us']) / 1e3}\n")
            f.write("\n\n")
    wall = os.path.join(work, "wall.dat")
    with open(wall, "w") as f:
        for c in res["freeze"]:
            plan, prep, sw = med(c["plan_us"]) / 1e3, med(c["prepare_us"]) / 1e3, med(c["switch_us"]) / 1e3
            rest = max(med(c["wall_ms"]) - plan - prep - sw, 0.001)
            f.write(f'"{c["functions"]}f/{c["threads"]}t" 0 {plan} {prep} {sw} {rest}\n')
    gdbf = os.path.join(work, "gdb.dat")
    g = res.get("gdb")
    ratio = ""
    with open(gdbf, "w") as f:
        if g:
            rows = [(med(g["gdb"]["gap_us"]) / 1e3, g["gdb"]["gap_us"]["max"] / 1e3),
                    (med(g["ours"]["gap_us"]) / 1e3, g["ours"]["gap_us"]["max"] / 1e3),
                    (med(g["ours"]["freeze_us"]) / 1e3, g["ours"]["freeze_us"]["max"] / 1e3),
                    (med(g["gdb"]["wall_ms"]), g["gdb"]["wall_ms"]["max"]),
                    (med(g["ours"]["wall_ms"]), g["ours"]["wall_ms"]["max"])]
            for i, (m, mx) in enumerate(rows):
                f.write(f"{i} {m} {mx}\n")
            ratio = f"freeze {g['freeze_ratio_victim_view']:.0f}x shorter"
        else:
            f.write("0 1 1\n")
            ratio = "not measured"
    m = res["machine"]
    script = GNUPLOT % {"png": png, "date": res["date"], "cpu": m["cpu"].replace('"', ""), "cores": m["cores"],
                        "kernel": m["kernel"], "dat": dat, "nf": len(funcs) - 1, "wall": wall, "gdb": gdbf,
                        "ratio": ratio}
    gp = os.path.join(work, "plot.gp")
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        log(f"plot: gnuplot failed: {r.stderr[-1000:]}")
        return None
    return png


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--hp-bin", default=os.environ.get("HP_BIN", os.path.join(ROOT, "build-bench")),
                    help="directory of the built tools (default $HP_BIN, else build-bench/)")
    ap.add_argument("--quick", action="store_true", help="3 runs each, smaller matrix: for development")
    ap.add_argument("--runs", type=int, help="runs per measurement (default 21; --quick 3)")
    ap.add_argument("--consistency", choices=["entry", "stack"], default="stack")
    ap.add_argument("--only", default="freeze,libc,startup,sched,overhead,memory,verify,gdb",
                    help="comma-separated parts: freeze,libc,startup,sched,overhead,memory,verify,gdb")
    ap.add_argument("--wait-quiet", type=float, default=30, metavar="S",
                    help="before each block of measurements wait up to S seconds for other processes to use "
                         "< 25%% of the CPU (default 30; 0: never wait)")
    ap.add_argument("--wait-budget", type=float, default=300, metavar="S",
                    help="at most S seconds of such waiting in the whole run (default 300)")
    ap.add_argument("--profile", action="store_true", help="profile hp-apply (perf, strace) instead of measuring")
    ap.add_argument("--funcs", help="package sizes of the freeze matrix (default 1,10,100,1000)")
    ap.add_argument("--threads", help="thread counts of the freeze matrix (default 1,8,64,1000)")
    ap.add_argument("--tag", help="results go to bench/results/<date>-TAG.*")
    ap.add_argument("--calls", type=int, default=1_000_000, help=argparse.SUPPRESS)
    ap.add_argument("--replot", metavar="JSON", help="only print the table and redraw the plot of a results file")
    ap.add_argument("--work", default=None, help="work directory (default <hp-bin>/bench-work)")
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    if a.runs is None:
        a.runs = 3 if a.quick else 21
    a.funcs = [int(x) for x in a.funcs.split(",")] if a.funcs else [1, 100] if a.quick else FUNCS
    a.threads = [int(x) for x in a.threads.split(",")] if a.threads else [1, 8, 1000] if a.quick else THREADS
    a.verify_patches = 2 if a.quick else VERIFY_PATCHES
    if a.work is None:
        a.work = os.path.join(a.hp_bin, "bench-work")
    parts = set(a.only.split(","))

    atexit.register(kill_children)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    if os.geteuid() != 0:
        try:
            with open("/proc/sys/kernel/yama/ptrace_scope") as f:
                if f.read().strip() not in ("0",):
                    log("warning: not root and Yama ptrace_scope is not 0: attaching may be refused")
        except OSError:
            pass

    if a.replot:
        with open(a.replot) as f:
            res = json.load(f)
        res["goals"] = goals(res)
        os.makedirs(a.work, exist_ok=True)
        png = plot(res, a.work, os.path.splitext(a.replot)[0] + ".png")
        with open(os.path.splitext(a.replot)[0] + ".md", "w") as f:
            f.write(markdown(res))
        print_table(res)
        print(f"\nplot: {png}")
        return 0
    tool = Tool(a.hp_bin)
    build = Build(a.work, tool)
    date = datetime.date.today().isoformat()
    os.makedirs(a.results, exist_ok=True)
    if a.profile:
        profile(a, tool, build, date)
        return 0

    res = {"schema": "hotpatch.bench/1", "date": date, "quick": a.quick, "runs": a.runs,
           "consistency": a.consistency, "machine": machine_info(), "source": git_info()}
    if res["machine"]["loadavg_at_start"][0] > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {res['machine']['loadavg_at_start'][0]} at start: other work on this machine "
            "will show up in the numbers")
    t0 = time.monotonic()
    bench = Bench(a, tool, build)
    res["loadavg_per_part"] = {}
    for part, key, fn in (("freeze", "freeze", bench.freeze_matrix), ("libc", "libc_wall", bench.libc_wall),
                          ("startup", "startup", bench.startup), ("sched", "sched", bench.sched),
                          ("overhead", "overhead", bench.overhead),
                          ("memory", "memory", bench.memory), ("verify", "verify_check", bench.verify_check),
                          ("gdb", "gdb", bench.gdb)):
        if part in parts:
            with open("/proc/loadavg") as f:
                res["loadavg_per_part"][part] = float(f.read().split()[0])
            res[key] = fn()
    res["quiet_log"] = bench.quiet_log
    res["goals"] = goals(res)
    res["duration_s"] = round(time.monotonic() - t0, 1)
    with open("/proc/loadavg") as f:
        res["machine"]["loadavg_at_end"] = [float(x) for x in f.read().split()[:3]]

    stem = date + ("-quick" if a.quick else "") + (f"-{a.tag}" if a.tag else "")
    js = os.path.join(a.results, stem + ".json")
    with open(js, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    png = plot(res, a.work, os.path.join(a.results, stem + ".png"))
    with open(os.path.join(a.results, stem + ".md"), "w") as f:
        f.write(markdown(res))
    print_table(res)
    print(f"\nresults: {os.path.relpath(js, ROOT)}" + (f", plot: {os.path.relpath(png, ROOT)}" if png else "")
          + f" ({res['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"bench: error: {e}")
        sys.exit(1)
    finally:
        kill_children()
