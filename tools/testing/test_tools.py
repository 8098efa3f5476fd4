# SPDX-License-Identifier: GPL-2.0
"""Host-side tests of tools/emfs-stat and tools/emfs-trace, on recorded
fixtures (a /proc/fs/emfs tree and an emfs-trace recording). The tools
scenario runs them for real in the guest."""

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
TOOLS = TOP / "tools"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load(name):
    """Imports an executable without a .py suffix as a module."""
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(TOOLS / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


class EmfsStat(unittest.TestCase):
    proc = FIXTURES / "proc-emfs"

    def rows(self, out):
        lines = out.splitlines()
        head = lines[0].split()
        return {r.split()[0]: dict(zip(head, r.split())) for r in lines[1:]}

    def test_stat_table_has_a_row_per_owner_and_a_sum(self):
        r = run(TOOLS / "emfs-stat", "--proc", self.proc)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = self.rows(r.stdout)
        self.assertEqual(sorted(rows), ["3", "7", "all"])
        self.assertEqual(rows["3"]["cached"], "100")
        self.assertEqual(rows["3"]["hit%"], "90.0")
        self.assertEqual(rows["7"]["hit%"], "-")
        self.assertEqual(rows["all"]["cached"], "64100")
        self.assertEqual(rows["all"]["freed"], "50")

    def test_stat_selects_owners(self):
        r = run(TOOLS / "emfs-stat", "--proc", self.proc, "7")
        self.assertEqual(sorted(self.rows(r.stdout)), ["7"])

    def test_stat_refuses_an_unknown_owner(self):
        r = run(TOOLS / "emfs-stat", "--proc", self.proc, "99")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no owner 99", r.stderr)

    def test_stat_says_when_emfs_is_not_loaded(self):
        r = run(TOOLS / "emfs-stat", "--proc", "/nonexistent/emfs")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is emfs loaded?", r.stderr)

    def test_stat_refuses_bad_intervals(self):
        for bad in (["-w", "-i", "0"], ["-w", "-i", "-1"], ["-w", "-n", "0"]):
            r = run(TOOLS / "emfs-stat", "--proc", self.proc, *bad)
            self.assertEqual(r.returncode, 2, bad)

    def test_watch_rates_are_per_second(self):
        stat = load("emfs-stat")
        before = {"lookups": 100, "hits": 50, "shrinker_freed": 0, "maps_cached": 7}
        after = {"lookups": 300, "hits": 250, "shrinker_freed": 1000, "maps_cached": 9}
        rate = stat.emfs_stats.rates(before, after, 2.0)
        self.assertEqual(rate["lookups"], 100.0)
        self.assertEqual(rate["shrinker_freed"], 500.0)
        self.assertNotIn("maps_cached", rate)
        row = stat.row(stat.LIVE, 3, after, rate).split()
        # owner, cached (a level, as it is), ..., lookups/s, hit% of the interval
        self.assertEqual(row[0], "3")
        self.assertEqual(row[1], "9")
        self.assertEqual(row[5], "100")
        self.assertEqual(row[6], "100.0")
        with self.assertRaises(ValueError):
            stat.emfs_stats.rates(before, after, 0)

    def test_watch_prints_the_frames_asked_for(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = Path(tmp) / "emfs"
            shutil.copytree(self.proc, proc)
            r = run(TOOLS / "emfs-stat", "--proc", proc, "-w", "-i", "0.1", "-n", "2")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.count("emfs-stat "), 2)
            self.assertEqual(r.stdout.count("lookups/s"), 2)

    def test_stats_lines_are_checked(self):
        stat = load("emfs-stat")
        with self.assertRaises(ValueError):
            stat.emfs_stats.parse_stats("maps_cached 1 2\n")


class EmfsTrace(unittest.TestCase):
    rec = FIXTURES / "emfs-trace"

    def report(self):
        r = run(TOOLS / "emfs-trace", "report", self.rec)
        self.assertEqual(r.returncode, 0, r.stderr)
        return dict(line.split(" ", 1) for line in r.stdout.splitlines())

    def test_report_sums_the_owners(self):
        rep = self.report()
        self.assertEqual(rep["maps_cached_peak"], "1200")
        self.assertEqual(rep["maps_cached_peak_s"], "1.00")
        self.assertEqual(rep["maps_cached_min_after_peak"], "804")
        self.assertEqual(rep["maps_cached_last"], "824")
        self.assertEqual(rep["duration_s"], "4.00")

    def test_report_counts_only_the_emfs_shrinkers(self):
        rep = self.report()
        # Two mm_shrink_slab_start of [emfs], one of super_cache_scan.
        self.assertEqual(rep["kernel_shrinker_calls"], "2")
        self.assertEqual(rep["vmscan:mm_shrink_slab_start"], "2")
        self.assertEqual(rep["worker_runs"], "3")
        self.assertEqual(rep["worker_freed"], "346")
        self.assertEqual(rep["emfs:em_cache_miss"], "1")

    def test_marks_are_the_phases(self):
        trace = load("emfs-trace")
        rec = trace.Recording(str(self.rec))
        self.assertEqual([m for _, m in rec.marks],
                         ["write", "synthetic owner", "squeeze 1", "read again"])
        self.assertAlmostEqual(rec.marks[2][0], 2.1, places=3)

    def test_plot_draws_a_png(self):
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "t.png"
            r = run(TOOLS / "emfs-trace", "plot", self.rec, "-o", png)
            self.assertEqual(r.returncode, 0, r.stderr)
            data = png.read_bytes()
            self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
            self.assertGreater(len(data), 20000)

    def test_report_refuses_a_directory_that_is_no_recording(self):
        r = run(TOOLS / "emfs-trace", "report", FIXTURES)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a recording", r.stderr)

    def test_record_needs_a_command_and_emfs(self):
        r = run(TOOLS / "emfs-trace", "record", "-o", "/nonexistent")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no command given", r.stderr)
        r = run(TOOLS / "emfs-trace", "record", "--tracefs", "/nonexistent",
                "-o", "/nonexistent", "--", "true")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is emfs loaded", r.stderr)


if __name__ == "__main__":
    unittest.main()
