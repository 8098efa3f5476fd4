# SPDX-License-Identifier: GPL-2.0
"""Tests of tools/build.sh's handling of a kernel given with KDIR."""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]


def kdir_check(kdir):
    env = dict(os.environ, KDIR=str(kdir))
    return subprocess.run([str(TOP / "tools" / "build.sh"), "kdir"], env=env,
                          capture_output=True, text=True)


class KdirTest(unittest.TestCase):
    def test_kdir_without_rust_is_refused(self):
        with tempfile.TemporaryDirectory() as d:
            Path(d, ".config").write_text("CONFIG_MODULES=y\n# CONFIG_RUST is not set\n")
            proc = kdir_check(d)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("without Rust support", proc.stderr)

    def test_kdir_with_rust_but_unbuilt_is_refused(self):
        with tempfile.TemporaryDirectory() as d:
            Path(d, ".config").write_text("CONFIG_RUST=y\n")
            proc = kdir_check(d)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("no built kernel crate", proc.stderr)

    def test_missing_kdir_is_refused(self):
        proc = kdir_check("/nonexistent/emfs-kdir")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("not a configured kernel build directory", proc.stderr)


if __name__ == "__main__":
    unittest.main()
