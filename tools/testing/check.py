#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make check: build, lint and run every emfs test.

Phases: set-up, kernel, module build, lint, the harness's own tests, the
runner's self-test, then the KUnit suites (insmod, KTAP parsed from the
guest log) and every scenario under tools/testing/emfs/scenarios/, run one
after the other in one guest per guest memory size
(tools/testing/emfs/batch.sh, emfs_guest.py). Each script's part of the
guest log is scanned for lockdep, WARN, BUG, oops, KASAN and kmemleak
reports and saved as out/logs/<name>.log; a script that crashes or hangs
the guest fails, and a new guest runs the rest.

Prints one line per test, the time of each phase, the total and the three
slowest phases, the failed tests again, and ends with "N passed, N
failed"; exits non-zero on any failure, any expected KUnit suite that did
not run, and any report found in a guest log.

  --suite A,B        run only these KUnit suites (no lint, no scenarios)
  --scenario A,B     run only these scenarios (no lint, no KUnit)
"""

import argparse
import os
import re
import subprocess
import sys
import time
import unittest
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "tools" / "testing"))
import emfs_guest as guest  # noqa: E402
import emfs_harness as harness  # noqa: E402

# KASAN and UBSAN make the guest several times slower: the workloads of
# the long scenarios are scaled down on that kernel (the guest's init sees
# these as environment variables).
FLAVOUR_CMDLINE = {
    "kasan": "EMFS_FSX_OPS=1500 EMFS_FIO_SIZE=32M EMFS_FAULT_FSX_OPS=500 "
             "EMFS_STRESS_SECS=20",
}
# What the KASAN kernel must cover in make check, to fit CI's time: the
# code where memory errors can hide, and why, for the output. The other
# scenarios (mount options, tools, benchmarks, the sample, debugfs files)
# run on the dev kernel only.
FLAVOUR_SCENARIOS = {
    "kasan": (["bad_input", "fault_inject", "fs_data", "fs_fsx", "posix", "stress"],
              "the data path, bad input, the namespace operations, fault "
              "injection and stress: where memory errors hide"),
}
# The guests' memory (tools/vm/run's default, 2 GiB, where not given). On
# the dev kernel every scenario runs in 512 MiB, the size the tools
# scenario squeezes, so that one guest runs them all; KASAN's shadow
# memory and quarantine want more.
GUEST_MEM = {"dev": "512M"}
# Seconds a script may run in the guest before it counts as hung
# ("emfs-scenario: timeout=SECS" in a script sets its own).
TIMEOUT = {"dev": 900, "kasan": 1800}
SCENARIOS = TOP / "tools" / "testing" / "emfs" / "scenarios"
# The kernel flavour (make KERNEL=...): its guest logs go apart.
FLAVOUR = os.environ.get("EMFS_KERNEL", "dev")
LOGS = TOP / "out" / "logs" / ("" if FLAVOUR == "dev" else FLAVOUR)


class Run:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.phases = []
        self.failures = []      # (name, detail), repeated at the end
        self.clippy = None      # the module build's status (3: clippy warned)

    def result(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append((name, detail))
        tag = "PASS" if ok else "FAIL"
        show = detail and (not ok or detail.startswith("skipped"))
        print(f"{tag}  {name}" + (f"  ({detail})" if show else ""), flush=True)

    def phase(self, name):
        run = self

        class Phase:
            def __enter__(self):
                self.start = time.monotonic()
                print(f"\n==> {name}", flush=True)

            def __exit__(self, *exc):
                run.phases.append((name, time.monotonic() - self.start))
                return False

        return Phase()


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=TOP, **kw)


def expected_suites():
    """Every KUnit suite declared in the module's sources."""
    suites = []
    for path in sorted((TOP / "rust").rglob("*.rs")):
        for m in re.finditer(r"kunit_tests\((\w+)\)", path.read_text()):
            suites.append(m.group(1))
    return suites


def show_tail(text, lines=40):
    for line in text.splitlines()[-lines:]:
        print("    | " + harness.strip(line))


def phase_build(run, args):
    with run.phase("set-up"):
        if sh(["tools/setup.sh"]).returncode != 0:
            run.result("setup", False, "tools/setup.sh failed")
            return False
    with run.phase("kernel"):
        kdir = sh(["tools/build.sh", "kdir"], stdout=subprocess.PIPE, text=True)
        if kdir.returncode != 0:
            run.result("kernel", False, "no usable kernel build")
            return False
        print(f"    KDIR={kdir.stdout.strip()}")
    with run.phase("module build"):
        # The module build is the clippy build: status 3 is a module built
        # with clippy warnings.
        rc = sh(["tools/build.sh", "module"]).returncode
        run.result("build/emfs.ko", rc in (0, 3))
        run.clippy = rc
        return rc in (0, 3)


def phase_lint(run):
    with run.phase("lint"):
        run.result("lint/clippy", run.clippy == 0,
                   "the module build (CLIPPY=1) has warnings")
        for gate in ("rustfmt", "checkpatch", "docs", "rust-analyzer", "ffi"):
            ok = sh(["tools/build.sh", gate]).returncode == 0
            run.result(f"lint/{gate}", ok)


def phase_harness(run):
    with run.phase("harness self-tests"):
        loader = unittest.TestLoader()
        suite = loader.discover(str(TOP / "tools" / "testing"), pattern="test_*.py")

        class Result(unittest.TestResult):
            def addSuccess(self, test):
                run.result(f"harness/{test._testMethodName}", True)

            def addFailure(self, test, err):
                run.result(f"harness/{test._testMethodName}", False,
                           str(err[1]).splitlines()[0])

            addError = addFailure

        suite.run(Result())


def plot_tools_recording():
    """The tools scenario leaves its emfs-trace recording in out/vm: draw
    it on the host, as 'make run' does."""
    rec = TOP / "out" / "vm" / "tools-recording"
    png = LOGS / "tools-recording.png"
    if png.exists():
        png.unlink()
    if not rec.is_dir():
        yield "emfs-trace plot on the host", False, f"no recording in {rec}"
        return
    proc = sh(["tools/emfs-trace", "plot", str(rec), "-o", str(png)],
              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ok = (proc.returncode == 0 and png.exists()
          and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
          and png.stat().st_size > 20000)
    yield (f"emfs-trace plot on the host draws {png.relative_to(TOP)}", ok,
           proc.stdout.strip()[-300:])


# Checks run on the host after a scenario, on what it left in out/vm.
HOST_CHECKS = {"tools": plot_tools_recording}


def scenario_text(name):
    path = SCENARIOS / f"{name}.sh"
    return path.read_text() if path.exists() else ""


def marker(text, key, default=None):
    """The value of an "emfs-scenario: KEY=VALUE" line of a script."""
    m = re.search(rf"emfs-scenario: {key}=(\w+)", text)
    return m.group(1) if m else default


def item_timeout(text):
    # A long stress run (make stress) gets its duration on top.
    return int(marker(text, "timeout", TIMEOUT[FLAVOUR])) + \
        int(os.environ.get("EMFS_STRESS_SECS", "0"))


def plan(kunit, scenarios):
    """Group the work into guests: one per guest memory size, KUnit first."""
    default = GUEST_MEM.get(FLAVOUR)
    groups = {}
    if kunit:
        groups.setdefault(default, []).append(guest.Item("kunit", TIMEOUT[FLAVOUR]))
    for name in scenarios:
        text = scenario_text(name)
        # "emfs-scenario: mem=SIZE": the guest's memory, for a scenario
        # that squeezes it.
        groups.setdefault(marker(text, "mem", default), []).append(
            guest.Item(name, item_timeout(text)))
    return groups


def outcome_failure(out):
    """Why an item's run failed as a whole, or "" when it ran to its end."""
    where = f"log {LOGS / log_name(out.item.name)}"
    if out.state == "done":
        return "" if out.status == 0 else f"exit status {out.status}; {where}"
    return {"crashed": f"the guest ended in it (crash or panic); {where}",
            "timeout": f"no end after {out.item.timeout} s: killed; {where}",
            "not booted": f"the guest did not boot; log {out.guest_log}"
            }.get(out.state, out.state)


def kmemleak_failure(out):
    if not out.scanned:
        return ("not scanned: the guest ended before its kmemleak scan "
                f"(log {out.guest_log})")
    if out.leaks:
        return f"kmemleak: {len(out.leaks)} objects; log {LOGS / log_name(out.item.name)}"
    return ""


def log_name(name):
    return "kunit.log" if name == "kunit" else \
        f"scenario-{name.replace('/', '-')}.log"


def save_log(out):
    """The item's part of the guest log, and the leaks blamed on it."""
    text = out.text
    if out.leaks:
        text += "\n\nkmemleak reports of objects allocated while it ran:\n"
        text += "\n".join(out.leaks) + "\n"
    (LOGS / log_name(out.item.name)).write_text(text)


def judge_kunit(run, out, suites):
    verdict = harness.judge_kunit(out.text, suites)
    for name, ok, detail in verdict.results:
        run.result(name, ok, detail)
    why = outcome_failure(out) or kmemleak_failure(out)
    run.result("kunit/load-unload-kmemleak", not why, why)
    if verdict.failed or why:
        show_tail(out.text + "\n" + "\n".join(out.leaks))


def judge_scenario(run, out):
    name = out.item.name
    text = out.text
    verdict = harness.judge_scan(text, harness.Verdict(), f"scenario/{name}")
    # Each check the scenario made ("ok: what" / "not ok: what").
    for what, ok in harness.scenario_checks(text):
        run.result(f"scenario/{name}: {what}", ok)
    why = outcome_failure(out)
    run.result(f"scenario/{name}", not why, why)
    if out.state == "done":
        run.result(f"scenario/{name}: kmemleak clean", out.scanned and not out.leaks,
                   kmemleak_failure(out))
        run.result(f"scenario/{name}: left nothing behind", not out.left,
                   "; ".join(out.left))
    host = HOST_CHECKS.get(name)
    if host and out.state == "done":
        for what, ok, detail in host():
            run.result(f"scenario/{name}: {what}", ok, detail)
    for rname, ok, detail in verdict.results:
        run.result(rname, ok, detail)
    if why or verdict.failed or out.leaks:
        show_tail(text + "\n" + "\n".join(out.leaks))


def phase_guests(run, suites, scenarios, selftest=False):
    """KUnit and the scenarios, in as few guests as their needs allow.
    With SELFTEST, the runner's self-test goes first in the first guest."""
    cmdline = FLAVOUR_CMDLINE.get(FLAVOUR, "")
    all_suites = expected_suites()
    if suites:
        cmdline += " emfs_suites=" + ",".join(suites)
    for mem, items in plan(suites is not None, scenarios).items():
        if selftest:
            items = [guest.Item(n, t) for n, t in SELFTEST] + items
            selftest = False
        names = ", ".join(i.name for i in items)
        print(f"\n==> guest{f' ({mem})' if mem else ''}: {names}", flush=True)
        stem = LOGS / f"guest-{mem or 'default'}"
        start = time.monotonic()

        def progress(item, status, secs):
            print(f"    {item.name}: exit status {status}, {secs:.1f} s",
                  flush=True)

        outcomes = guest.run_guest(items, stem, cmdline, mem=mem,
                                   on_progress=progress)
        spent = sum(o.seconds for o in outcomes)
        run.phases.append((f"guest boots, kmemleak scans{f' ({mem})' if mem else ''}",
                           time.monotonic() - start - spent))
        if outcomes and outcomes[0].item.name == SELFTEST[0][0]:
            outcomes = judge_runner(run, outcomes)
        for out in outcomes:
            save_log(out)
            label = "KUnit" if out.item.name == "kunit" else f"scenario {out.item.name}"
            print(f"\n--> {label} ({out.seconds:.1f} s)", flush=True)
            run.phases.append((label, out.seconds))
            if out.item.name == "kunit":
                judge_kunit(run, out, suites or all_suites)
            else:
                judge_scenario(run, out)


# The runner's self-test (tools/testing/emfs/selftest/) and the time each
# script is given.
SELFTEST = [("selftest/exit3", 120), ("selftest/panic", 120), ("selftest/hang", 5)]


def judge_runner(run, outcomes):
    """The runner's own test, run first in the first guest: a script's exit
    status and host programs reach the host; a script that panics the
    guest and one that hangs are each reported as that script's failure,
    and the scripts after them still run, in a third guest. Returns the
    outcomes that are not the self-test's."""
    n = len(SELFTEST)
    mine, rest = outcomes[:n], outcomes[n:]
    exit3, panic, hang = mine + [None] * (n - len(mine))
    after = rest[0] if rest else None
    run.phases.append(("VM runner self-test", sum(o.seconds for o in mine)))
    print("\n--> VM runner self-test", flush=True)
    for out in mine:
        save_log(out)
    run.result("runner/exit-status", exit3 and exit3.status == 3,
               f"expected 3, got {exit3 and exit3.status}")
    run.result("runner/host-tools", exit3 and "xfs_io version" in exit3.text,
               "xfs_io -V output not in the guest log")
    run.result("runner/panic-is-that-script's-failure",
               panic and panic.state == "crashed" and
               any(h.kind == "oops" for h in harness.scan_log(panic.text)),
               f"state {panic and panic.state}")
    run.result("runner/hang-is-that-script's-failure",
               hang and hang.state == "timeout", f"state {hang and hang.state}")
    # The hung guest's QEMU is gone, not left running beside the next.
    stray = [p for p in Path("/proc").glob("[0-9]*/cmdline")
             if b"emfs_batch=selftest/hang" in _read_bytes(p)]
    run.result("runner/the-hung-guest-is-gone", not stray,
               f"still running: {[p.parent.name for p in stray]}")
    run.result("runner/the-rest-still-run", after and after.state == "done",
               f"next script: {after and after.item.name} {after and after.state}")
    logs = [o.guest_log for o in mine + rest[:1]]
    run.result("runner/a-new-guest-after-each", len(set(logs)) == 3 and
               logs[1] != logs[2], f"guest logs: {[str(p) for p in logs]}")
    return rest


def _read_bytes(path):
    try:
        return path.read_bytes()
    except OSError:
        return b""


def select(given, known, kind):
    """The names of a comma-separated list, each checked against KNOWN."""
    names = [n for n in given.split(",") if n]
    for n in names:
        if n not in known:
            return None, f"no such {kind} {n}; known: {', '.join(known)}"
    return names, ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", help="KUnit suites, comma-separated")
    ap.add_argument("--scenario", help="scenarios, comma-separated")
    args = ap.parse_args()

    run = Run()
    start = time.monotonic()
    print(f"kernel flavour: {FLAVOUR}")
    LOGS.mkdir(parents=True, exist_ok=True)
    known_scenarios = sorted(s.stem for s in SCENARIOS.glob("*.sh"))
    suites = scenarios = None
    if args.suite:
        suites, why = select(args.suite, expected_suites(), "suite")
        if why:
            run.result(f"kunit/{args.suite}", False, why)
    if args.scenario:
        scenarios, why = select(args.scenario, known_scenarios, "scenario")
        if why:
            run.result(f"scenario/{args.scenario}", False, why)
    whole = not args.suite and not args.scenario
    if whole:
        suites = []     # every suite
        scenarios = known_scenarios
        if FLAVOUR in FLAVOUR_SCENARIOS:
            keep, reason = FLAVOUR_SCENARIOS[FLAVOUR]
            scenarios = [s for s in scenarios if s in keep]
            print(f"{FLAVOUR} kernel: KUnit and the scenarios {', '.join(scenarios)} "
                  f"({reason}); the others run on the dev kernel only")
    if not run.failed and phase_build(run, args):
        if whole:
            # The sources are the same for every flavour: lint once, on
            # the dev kernel's build.
            if FLAVOUR == "dev":
                phase_lint(run)
            phase_harness(run)
        if suites is not None or scenarios:
            phase_guests(run, suites, scenarios or [], selftest=whole)

    total = time.monotonic() - start
    print("\nphase times:")
    for name, secs in run.phases:
        print(f"    {name:<40} {secs:7.1f} s")
    print(f"    {'total':<40} {total:7.1f} s")
    slow = sorted(run.phases, key=lambda p: -p[1])[:3]
    print("    slowest: " + ", ".join(f"{n} {s:.0f} s" for n, s in slow))
    if run.failures:
        # Again at the end, where a log cut short still shows them.
        print("\nfailed:")
        for name, detail in run.failures:
            print(f"    {name}" + (f"  ({detail})" if detail else ""))
    print(f"{run.passed} passed, {run.failed} failed")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
