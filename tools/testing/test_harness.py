# SPDX-License-Identifier: GPL-2.0
"""Tests of the make check harness against recorded guest logs.

kunit-pass.log is a real guest log of the KUnit run; the other fixtures are
that log with one thing gone wrong: a failed case, no suite at all, a
lockdep report, a WARN, a crash in the middle of the suite, a kmemleak
report. Each of them must turn the verdict into a failure.
"""

import unittest
from pathlib import Path

import emfs_guest as guest
import emfs_harness as harness

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SUITES = ["emfs_glue"]


def judge(name, suites=SUITES):
    return harness.judge_kunit((FIXTURES / name).read_text(), suites)


def failures(verdict):
    return [(n, d) for n, ok, d in verdict.results if not ok]


class HarnessTest(unittest.TestCase):
    def test_pass_log_passes(self):
        verdict = judge("kunit-pass.log")
        self.assertEqual(failures(verdict), [])
        self.assertEqual(len(verdict.results), 4)
        self.assertIn(("kunit/emfs_glue/probe_sees_arguments", True, ""),
                      verdict.results)

    def test_failed_case_fails(self):
        fails = failures(judge("kunit-failed-case.log"))
        self.assertEqual([n for n, _ in fails],
                         ["kunit/emfs_glue/probe_sees_arguments"])

    def test_missing_suite_fails(self):
        fails = failures(judge("kunit-missing-suite.log"))
        self.assertEqual(fails, [("kunit/emfs_glue", "suite did not run")])

    def test_suite_expected_but_absent_fails(self):
        fails = failures(judge("kunit-pass.log", SUITES + ["emfs_extent_map"]))
        self.assertEqual(fails, [("kunit/emfs_extent_map", "suite did not run")])

    def test_lockdep_splat_fails(self):
        fails = failures(judge("kunit-lockdep.log"))
        self.assertEqual([n for n, _ in fails], ["kunit/log-scan/lockdep"])
        self.assertIn("circular locking", fails[0][1])

    def test_warn_fails(self):
        fails = failures(judge("kunit-warn.log"))
        self.assertEqual([n for n, _ in fails], ["kunit/log-scan/WARN"])

    def test_crash_mid_suite_fails(self):
        names = [n for n, _ in failures(judge("kunit-crash.log"))]
        self.assertIn("kunit/emfs_glue", names)
        self.assertIn("kunit/log-scan/BUG", names)
        self.assertIn("kunit/log-scan/oops", names)

    def test_kmemleak_fails(self):
        fails = failures(judge("kunit-kmemleak.log"))
        self.assertEqual([n for n, _ in fails], ["kunit/log-scan/kmemleak"])

    def test_cache_failure_dump_is_not_a_failure(self):
        # kmem_cache_create() dumps the stack when it fails; any other
        # stack still fails.
        ok = ("[ 1.0] __kmem_cache_create_args(x_cache) failed with error -12\n"
              "[ 1.1] CPU: 1 UID: 0 PID: 9 Comm: kunit_try_catch\n"
              "[ 1.2] Tainted: [O]=OOT_MODULE\n"
              "[ 1.3] Call Trace:\n")
        self.assertEqual(harness.scan_log(ok), [])
        bad = ok.replace("__kmem_cache_create_args", "something_else")
        self.assertEqual([h.kind for h in harness.scan_log(bad)], ["stack"])
        late = ok + "".join(f"[ 2.{i}] x\n" for i in range(5)) + "[ 3.0] Call Trace:\n"
        self.assertEqual([h.kind for h in harness.scan_log(late)], ["stack"])

    def test_exit_status(self):
        self.assertEqual(harness.vm_exit_status(
            (FIXTURES / "kunit-pass.log").read_text()), 0)
        self.assertEqual(harness.vm_exit_status(
            (FIXTURES / "kunit-missing-suite.log").read_text()), 1)
        self.assertIsNone(harness.vm_exit_status(
            (FIXTURES / "kunit-crash.log").read_text()))

    def test_ktap_skip_and_nested_results(self):
        text = "\n".join([
            "[    1.0] KTAP version 1",
            "[    1.0]     # Subtest: s",
            "[    1.0]     1..2",
            "[    1.0]         ok 1 param-a",
            "[    1.0]         not ok 2 param-b",
            "[    1.0]     not ok 1 table_case",
            "[    1.0]     ok 2 skipped_case # SKIP needs KASAN",
            "[    1.0] not ok 1 s",
        ])
        suite = harness.parse_ktap(text)["s"]
        self.assertTrue(suite.finished)
        self.assertEqual([(c.name, c.ok, c.skipped) for c in suite.cases],
                         [("table_case", False, False), ("skipped_case", True, True)])

    def test_scenario_checks_are_counted(self):
        log = ("[    1.000000] emfs: loaded\n"
               "ok: mount\r\n"
               "not ok: umount (EBUSY)\n"
               "    ok 3 some_kunit_case\n"
               "[    2.000000] ok: not from the scenario\n"
               "ok: rmmod\n")
        self.assertEqual(harness.scenario_checks(log), [
            ("mount", True), ("umount (EBUSY)", False),
            ("rmmod", True)])

    def test_a_check_line_the_kernel_cut_is_put_back(self):
        # As seen on a console: the kernel printed twice while a
        # scenario's line was half written.
        log = ("ok: debugfs synthetic given 'abc': EINVAL\n"
               "ok: debugfs synt[   16.644549] emfs: synthetic: expected\n"
               "hetic given '1':[   16.645777] emfs: synthetic: expected\n"
               " EINVAL\n"
               "[   16.648278] emfs: synthetic: expected\n"
               "ok: debugfs synthetic given '1 2 3': EINVAL\n")
        self.assertEqual(harness.scenario_checks(log), [
            ("debugfs synthetic given 'abc': EINVAL", True),
            ("debugfs synthetic given '1': EINVAL", True),
            ("debugfs synthetic given '1 2 3': EINVAL", True)])

    def test_clean_scenario_log_has_no_hits(self):
        self.assertEqual(harness.scan_log((FIXTURES / "kunit-pass.log").read_text()), [])


HZ = 250
INITIAL = (1 << 32) - 300 * HZ


def leak(at, comm="insmod"):
    """A kmemleak report of one object allocated AT s after boot."""
    return (f"unreferenced object 0xffff888004a1b000 (size 64):\n"
            f"  comm \"{comm}\", pid 200, jiffies {INITIAL + int(at * HZ)}\n"
            f"  backtrace (crc 0):\n"
            f"    kmalloc_trace+0x1/0x2\n")


BATCH_LOG = "\n".join([
    "[    1.500000] Run /init as init process",
    "emfs-vm: guest up, kernel 7.3.4, 2 cpus",
    "emfs-batch: begin kunit at 2.00",
    "[    2.100000]     # Subtest: emfs_glue",
    "[    2.200000] ok 1 emfs_glue",
    "emfs-batch: end kunit status 0 at 4.00",
    "emfs-batch: done kunit",
    "emfs-batch: begin fs_mount at 4.50",
    "ok: mount",
    "emfs-batch: end fs_mount status 1 at 20.00",
    "emfs-batch: fs_mount left module emfs loaded",
    "[   20.100000] WARNING: CPU: 1 PID: 3 at fs/emfs.c:1 x+0x1/0x2",
    "emfs-batch: kmemleak fs_mount begin",
    leak(3.0),
    "emfs-batch: kmemleak fs_mount end",
    "emfs-batch: done fs_mount",
    "emfs-batch: begin fs_data at 21.00",
    "ok: write",
    "emfs-batch: end fs_data status 0 at 30.00",
    "emfs-batch: done fs_data",
    "emfs-batch: kmemleak final begin",
    leak(18.0) + leak(25.0, "kworker/0:1"),
    "emfs-batch: kmemleak final end",
    "emfs-vm: exit status 1",
])


class BatchLogTest(unittest.TestCase):
    """Cutting a batch guest's log into one part per script
    (emfs_guest.split_log) and blaming each leak on the script that ran
    when it was allocated (attribute_leaks)."""

    def test_parts_and_markers(self):
        boot, parts, reports = guest.split_log(BATCH_LOG)
        self.assertEqual([p.name for p in parts], ["kunit", "fs_mount", "fs_data"])
        self.assertEqual([p.status for p in parts], [0, 1, 0])
        self.assertTrue(all(p.done for p in parts))
        self.assertIn("emfs-vm: guest up", boot[1])
        self.assertEqual([tag for tag, _ in reports], ["fs_mount", "final"])
        # The kernel's late WARN stays with the script before it; the
        # kmemleak reports are taken out of the parts.
        self.assertTrue(any("WARNING" in line for line in parts[1].lines))
        self.assertFalse(any("unreferenced" in line for p in parts for line in p.lines))
        self.assertEqual(harness.scenario_checks("\n".join(parts[1].lines)),
                         [("mount", True)])

    def test_leaks_are_blamed_by_allocation_time(self):
        _, parts, reports = guest.split_log(BATCH_LOG)
        blamed = guest.attribute_leaks(parts, reports, HZ)
        self.assertEqual({k: len(v) for k, v in blamed.items()},
                         {"kunit": 1, "fs_mount": 1, "fs_data": 1})
        self.assertIn("kworker", blamed["fs_data"][0])

    def test_a_leak_from_boot_is_the_boots(self):
        _, parts, _ = guest.split_log(BATCH_LOG)
        blamed = guest.attribute_leaks(parts, [("boot", leak(1.0))], HZ)
        self.assertEqual(list(blamed), ["boot"])

    def test_a_marker_after_a_cut_line_is_found(self):
        # The markers are kernel records: one can follow the start of a
        # script's line that the kernel cut.
        text = BATCH_LOG.replace(
            "emfs-batch: done fs_mount",
            "ok: debugfs synt[   21.000000] emfs-batch: done fs_mount")
        _, parts, _ = guest.split_log(text)
        self.assertTrue(parts[1].done)
        self.assertEqual([p.name for p in parts], ["kunit", "fs_mount", "fs_data"])

    def test_jiffies_wrap(self):
        self.assertAlmostEqual(guest.jiffies_to_uptime(INITIAL + 10 * HZ, HZ), 10.0)
        # On 64-bit, jiffies go on past 2^32, 300 s after boot.
        self.assertAlmostEqual(guest.jiffies_to_uptime((1 << 32) + 5 * HZ, HZ), 305.0)

    def test_a_crash_leaves_its_part_open(self):
        text = BATCH_LOG.split("emfs-batch: end fs_data")[0] + \
            "[   25.000000] Kernel panic - not syncing: sysrq triggered crash\n"
        _, parts, _ = guest.split_log(text)
        self.assertEqual(parts[-1].name, "fs_data")
        self.assertFalse(parts[-1].done)
        self.assertIsNone(parts[-1].status)
        self.assertIn("oops", [h.kind for h in harness.scan_log("\n".join(parts[-1].lines))])


if __name__ == "__main__":
    unittest.main()
