# SPDX-License-Identifier: GPL-2.0
"""Tests of the make check harness against recorded guest logs.

kunit-pass.log is a real guest log of the KUnit run; the other fixtures are
that log with one thing gone wrong: a failed case, no suite at all, a
lockdep report, a WARN, a crash in the middle of the suite, a kmemleak
report. Each of them must turn the verdict into a failure.
"""

import unittest
from pathlib import Path

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

    def test_clean_scenario_log_has_no_hits(self):
        self.assertEqual(harness.scan_log((FIXTURES / "kunit-pass.log").read_text()), [])


if __name__ == "__main__":
    unittest.main()
