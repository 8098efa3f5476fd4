# SPDX-License-Identifier: GPL-2.0
"""Reading emfs guest logs: KTAP results and kernel error reports.

Used by tools/testing/check.py; tested by tools/testing/test_harness.py
against recorded logs in tools/testing/fixtures/.
"""

import re
from dataclasses import dataclass, field

# printk's "[    1.234567] " prefix (CONFIG_PRINTK_TIME), and any caller id.
_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?(?:\[\s*[CT]\d+\]\s?)?")
_SUBTEST = re.compile(r"^(\s*)# Subtest: (\S+)\s*$")
_RESULT = re.compile(r"^(\s*)(not ok|ok) (\d+) (\S+)(?:\s+#\s*(\S+)(.*))?$")

# Kernel reports that fail a run wherever they appear in a guest log.
SCAN_PATTERNS = [
    ("WARN", re.compile(r"------------\[ cut here \]------------|WARNING: CPU: \d+ PID: \d+")),
    ("lockdep", re.compile(
        r"WARNING: (possible circular locking|possible recursive locking|"
        r"inconsistent lock state|suspicious RCU usage|held lock freed|"
        r"lock held when returning|bad unlock balance|possible irq lock inversion|"
        r".*locking)|DEBUG_LOCKS_WARN_ON|INFO: possible .*locking")),
    ("BUG", re.compile(r"\bBUG: |kernel BUG at")),
    ("oops", re.compile(r"Oops[: ]|general protection fault|Kernel panic|"
                        r"Unable to handle kernel|panicked at")),
    ("KASAN", re.compile(r"KASAN: |UBSAN: ")),
    ("kmemleak", re.compile(r"kmemleak: \d+ new suspected memory leak|unreferenced object 0x")),
    ("hang", re.compile(r"INFO: task .* blocked for more than|rcu: INFO: .* detected stall")),
    ("stack", re.compile(r"Call Trace:")),
]

# kmem_cache_create() reports every failure with a stack dump
# (mm/slab_common.c), also when an allocation it made failed (ENOMEM, or
# EINVAL from SLUB's per-node set-up), which fault injection causes on
# purpose. The dump is that report; the caller gets NULL and must return
# an error, which the tests check (a cache that cannot be made outside
# fault injection fails its test).
_CACHE_FAILED = re.compile(r"__kmem_cache_create_args\(\S+\) failed with error -\d+$")


def strip(line):
    """Return a console line without its carriage return and printk time."""
    return _TIMESTAMP.sub("", line.rstrip("\r\n").replace("\r", ""))


@dataclass
class Case:
    name: str
    ok: bool
    skipped: bool = False
    reason: str = ""


@dataclass
class Suite:
    name: str
    cases: list = field(default_factory=list)
    finished: bool = False
    ok: bool = False


def parse_ktap(text):
    """Parse the KUnit KTAP output found in a guest log.

    Returns a dict of suite name to Suite. A suite whose "# Subtest:" line
    was seen but whose own result line was not (a crash, a hang) has
    finished == False. Case results nested deeper than the suite's own
    cases (parameterised runs) are summarised by their parent line.
    """
    suites = {}
    current = None
    depth = None
    for raw in text.splitlines():
        line = strip(raw)
        m = _SUBTEST.match(line)
        if m:
            indent = len(m.group(1))
            if indent == 4:
                current = Suite(m.group(2))
                suites[current.name] = current
                depth = 4
            continue
        m = _RESULT.match(line)
        if not m or current is None:
            continue
        indent, verdict, _, name, directive, rest = m.groups()
        ok = verdict == "ok"
        skipped = (directive or "").upper() == "SKIP"
        if len(indent) == depth:
            current.cases.append(Case(name, ok, skipped, (rest or "").strip()))
        elif len(indent) == 0 and name == current.name:
            current.finished = True
            current.ok = ok
            current = None
    return suites


_CHECK_LINE = re.compile(r"^(not )?ok: (.+)$")
# A kernel record that starts in the middle of a console line: the kernel
# printed while a program's line was half written.
_CUT = re.compile(r"\[\s*\d+\.\d+\] ")


def program_lines(text):
    """The console's lines as programs wrote them: a line the kernel cut
    ("ok: some[  1.2] kernel record" then "thing") is put back together
    ("ok: something"); the kernel's records are left out."""
    lines = []
    carry = ""
    for raw in text.splitlines():
        line = raw.rstrip("\r\n").replace("\r", "")
        m = _CUT.search(line)
        if m and m.start() == 0:
            continue                    # a kernel record of its own
        if m:
            carry += line[:m.start()]   # the rest follows on a later line
            continue
        lines.append(carry + line)
        carry = ""
    if carry:
        lines.append(carry)
    return lines


def scenario_checks(text):
    """Every check a scenario printed ("ok: what" or "not ok: what"), in
    order, as (what, passed). Kernel lines (with a printk time) are not
    the scenario's; a check line the kernel cut is put back together."""
    checks = []
    for line in program_lines(text):
        m = _CHECK_LINE.match(line)
        if m:
            checks.append((m.group(2), m.group(1) is None))
    return checks


@dataclass
class Hit:
    kind: str
    lineno: int
    line: str


def scan_log(text):
    """Return every kernel error report found in a guest log, in order."""
    hits = []
    cache_failed = -10
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = strip(raw)
        if _CACHE_FAILED.search(line):
            cache_failed = lineno
            continue
        for kind, pattern in SCAN_PATTERNS:
            if pattern.search(line):
                if kind == "stack" and lineno - cache_failed <= 4:
                    break
                hits.append(Hit(kind, lineno, line))
                break
    return hits


@dataclass
class Verdict:
    """The outcome of one guest run: a list of (test name, passed, detail)."""
    results: list = field(default_factory=list)

    def add(self, name, passed, detail=""):
        self.results.append((name, passed, detail))

    @property
    def failed(self):
        return sum(1 for _, ok, _ in self.results if not ok)


def judge_kunit(text, expected_suites, prefix="kunit"):
    """Turn a KUnit guest log into test results.

    Every case of every expected suite is one result; an expected suite that
    did not run or did not finish is a failed result of its own, and so is
    every kernel error report in the log.
    """
    verdict = Verdict()
    suites = parse_ktap(text)
    for name in expected_suites:
        suite = suites.get(name)
        if suite is None:
            verdict.add(f"{prefix}/{name}", False, "suite did not run")
            continue
        for case in suite.cases:
            detail = "skipped: " + case.reason if case.skipped else ""
            verdict.add(f"{prefix}/{name}/{case.name}", case.ok, detail)
        if not suite.finished:
            verdict.add(f"{prefix}/{name}", False, "suite did not finish")
        elif not suite.cases:
            verdict.add(f"{prefix}/{name}", False, "suite ran no cases")
        elif not suite.ok and all(c.ok for c in suite.cases):
            verdict.add(f"{prefix}/{name}", False, "suite reported failure")
    judge_scan(text, verdict, prefix)
    return verdict


def judge_scan(text, verdict, prefix):
    """Add one failed result per kind of kernel report found in the log."""
    seen = {}
    for hit in scan_log(text):
        seen.setdefault(hit.kind, hit)
    if len(seen) > 1:
        # A bare stack dump is only reported when nothing explains it.
        seen.pop("stack", None)
    for kind, hit in seen.items():
        verdict.add(f"{prefix}/log-scan/{kind}", False,
                    f"line {hit.lineno}: {hit.line.strip()}")
    return verdict


def vm_exit_status(text):
    """Return the script exit status the guest reported, or None."""
    status = None
    for raw in text.splitlines():
        m = re.search(r"emfs-vm: exit status (\d+)", strip(raw))
        if m:
            status = int(m.group(1))
    return status
