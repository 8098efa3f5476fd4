#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make check: build, lint and run every emfs test.

Phases: set-up, kernel, module build, lint, the harness's own tests, the
KUnit suites (one guest: insmod, KTAP parsed from the guest log), and every
scenario under tools/testing/emfs/scenarios/ (one guest each). Every guest
log is scanned for lockdep, WARN, BUG, oops, KASAN and kmemleak reports.

Prints one line per test and ends with "N passed, N failed"; exits non-zero
on any failure, any expected KUnit suite that did not run, and any report
found in a guest log.

  --suite NAME       run only KUnit suite NAME (no lint, no scenarios)
  --scenario NAME    run only scenario NAME (no lint, no KUnit)
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
import emfs_harness as harness  # noqa: E402

# KASAN and UBSAN make the guest several times slower: the workloads of
# the long scenarios are scaled down on that kernel (the guest's init sees
# these as environment variables).
FLAVOUR_CMDLINE = {
    "kasan": "EMFS_FSX_OPS=1500 EMFS_FIO_SIZE=32M EMFS_FAULT_FSX_OPS=500 "
             "EMFS_STRESS_SECS=20",
}
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

    def result(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
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


def vm_run(script, log, extra_cmdline="", timeout=900, mem=None):
    env = dict(os.environ)
    # What the caller put in EMFS_VM_CMDLINE (make stress) wins over the
    # same key=value given here.
    words = {}
    for word in (extra_cmdline + " " + env.get("EMFS_VM_CMDLINE", "")).split():
        words[word.split("=", 1)[0]] = word
    extra_cmdline = " ".join(words.values())
    if extra_cmdline:
        env["EMFS_VM_CMDLINE"] = extra_cmdline
    proc = sh(["tools/vm/run", "--quiet", "--timeout", str(timeout),
               "--log", str(log)] + (["--mem", mem] if mem else []) + [str(script)],
              env=env)
    text = log.read_text(errors="replace") if log.exists() else ""
    return proc.returncode, text


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
        ok = sh(["tools/build.sh", "module"]).returncode == 0
        run.result("build/emfs.ko", ok)
        return ok


def phase_lint(run):
    with run.phase("lint"):
        for gate in ("rustfmt", "clippy", "checkpatch", "docs", "rust-analyzer"):
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


def phase_runner(run):
    with run.phase("VM runner self-test"):
        log = LOGS / "runner-exit3.log"
        rc, text = vm_run(TOP / "tools/testing/emfs/runner-exit3.sh", log, timeout=300)
        run.result("runner/exit-status", rc == 3, f"expected 3, got {rc}")
        run.result("runner/host-tools", "xfs_io version" in text,
                   "xfs_io -V output not in the guest log")


def phase_kunit(run, only):
    suites = expected_suites()
    if only:
        if only not in suites:
            run.result(f"kunit/{only}", False,
                       f"no such suite; known: {', '.join(suites)}")
            return
        suites = [only]
    with run.phase(f"KUnit ({', '.join(suites)})"):
        log = LOGS / "kunit.log"
        cmdline = f"kunit.filter_glob={only}" if only else ""
        rc, text = vm_run(TOP / "tools/testing/emfs/kunit.sh", log, cmdline)
        verdict = harness.judge_kunit(text, suites)
        for name, ok, detail in verdict.results:
            run.result(name, ok, detail)
        ok = rc == 0
        run.result("kunit/load-unload-kmemleak", ok,
                   "" if ok else f"guest script exited {rc}; log {log}")
        if verdict.failed or not ok:
            print(f"    guest log: {log}")
            show_tail(text)


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


def phase_scenarios(run, only):
    scripts = sorted(SCENARIOS.glob("*.sh"))
    if only:
        scripts = [s for s in scripts if s.stem == only]
        if not scripts:
            known = ", ".join(s.stem for s in sorted(SCENARIOS.glob("*.sh")))
            run.result(f"scenario/{only}", False, f"no such scenario; known: {known}")
            return
    for script in scripts:
        with run.phase(f"scenario {script.stem}"):
            log = LOGS / f"scenario-{script.stem}.log"
            # The KUnit phase runs the suites; scenarios load the module
            # without running them again.
            # A scenario marked "emfs-scenario: kunit" needs the suites.
            text = script.read_text()
            marked = "emfs-scenario: kunit" in text
            cmdline = ("" if marked else "kunit.enable=0 ") + FLAVOUR_CMDLINE.get(FLAVOUR, "")
            # "emfs-scenario: mem=SIZE": the guest's memory, for a scenario
            # that squeezes it.
            mem = re.search(r"emfs-scenario: mem=(\w+)", text)
            # A long stress run (make stress) gets its duration on top.
            timeout = TIMEOUT[FLAVOUR] + int(os.environ.get("EMFS_STRESS_SECS", "0"))
            rc, text = vm_run(script, log, cmdline.strip(), timeout=timeout,
                              mem=mem.group(1) if mem else None)
            verdict = harness.judge_scan(text, harness.Verdict(),
                                         f"scenario/{script.stem}")
            # Each check the scenario made ("ok: what" / "not ok: what").
            for what, ok in harness.scenario_checks(text):
                run.result(f"scenario/{script.stem}: {what}", ok)
            run.result(f"scenario/{script.stem}", rc == 0,
                       "" if rc == 0 else f"exit status {rc}; log {log}")
            host = HOST_CHECKS.get(script.stem)
            if host:
                for what, ok, detail in host():
                    run.result(f"scenario/{script.stem}: {what}", ok, detail)
            for name, ok, detail in verdict.results:
                run.result(name, ok, detail)
            if rc != 0 or verdict.failed:
                show_tail(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite")
    ap.add_argument("--scenario")
    args = ap.parse_args()

    run = Run()
    start = time.monotonic()
    print(f"kernel flavour: {FLAVOUR}")
    if phase_build(run, args):
        if not args.suite and not args.scenario:
            # The sources are the same for every flavour: lint once, on
            # the dev kernel's build.
            if FLAVOUR == "dev":
                phase_lint(run)
            phase_harness(run)
            phase_runner(run)
        if not args.scenario:
            phase_kunit(run, args.suite)
        if not args.suite:
            phase_scenarios(run, args.scenario)

    print("\nphase times:")
    for name, secs in run.phases:
        print(f"    {name:<40} {secs:7.1f} s")
    print(f"    {'total':<40} {time.monotonic() - start:7.1f} s")
    print(f"{run.passed} passed, {run.failed} failed")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
