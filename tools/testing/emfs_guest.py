# SPDX-License-Identifier: GPL-2.0
"""Running many test scripts in few guests, and cutting the guest log.

tools/testing/emfs/batch.sh runs the scripts named on the guest's command
line one after the other and marks each one's begin, end and clean-up in
the log. This module starts that guest (tools/vm/run), watches its log as
it grows, kills it when a script overruns its time, boots a new guest for
the scripts not yet run when one crashed or hung, and gives back one
Outcome per script: its exit status, its part of the log, its time, and
the kmemleak reports whose allocations happened while it ran.

The log cutting and the kmemleak attribution are pure functions of the log
text, tested by tools/testing/test_harness.py.
"""

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import emfs_harness as harness

TOP = Path(__file__).resolve().parents[2]
BATCH = TOP / "tools" / "testing" / "emfs" / "batch.sh"

# The markers are kernel log records (batch.sh writes them to /dev/kmsg):
# whole, but maybe after the start of a script's line the kernel cut.
_BEGIN = re.compile(r"emfs-batch: begin (\S+) at ([\d.]+)$")
_END = re.compile(r"emfs-batch: end (\S+) status (\d+) at ([\d.]+)$")
_DONE = re.compile(r"emfs-batch: done (\S+)$")
_LEFT = re.compile(r"emfs-batch: (\S+) left (.+)$")
_KM_BEGIN = re.compile(r"emfs-batch: kmemleak (\S+) begin$")
_KM_END = re.compile(r"emfs-batch: kmemleak (\S+) end$")
_KM_SCANNED = "emfs-batch: kmemleak scanned"
_KM_OBJECT = re.compile(r"^unreferenced object 0x[0-9a-f]+")
_KM_JIFFIES = re.compile(r"jiffies (\d+)")


@dataclass
class Item:
    """One script to run in a guest."""
    name: str              # scenario name, "kunit", or "selftest/<name>"
    timeout: int           # seconds from its begin to its end


@dataclass
class Outcome:
    item: Item
    # "done" (ran to its end), "crashed" (the guest ended in it), "timeout"
    # (killed after item.timeout), "not booted" (the guest never got to it)
    state: str = "not run"
    status: int = None          # the script's exit status, when done
    text: str = ""              # its part of the guest log
    left: list = field(default_factory=list)      # what it left behind
    leaks: list = field(default_factory=list)     # kmemleak reports (text)
    scanned: bool = False       # its guest lived to the final kmemleak scan
    seconds: float = 0.0
    guest_log: Path = None


@dataclass
class Part:
    """A script's part of one guest log, found by split_log()."""
    name: str
    lines: list = field(default_factory=list)
    begin_at: float = None      # guest uptime
    status: int = None
    done: bool = False


def clean(raw):
    return raw.rstrip("\r\n").replace("\r", "")


def split_log(text):
    """Cut a batch guest log into (boot lines, [Part], [(tag, report)]).

    A Part holds its script's lines from its begin marker up to the next
    script's begin (so the kernel's late messages and the clean-up stay
    with it); kmemleak report blocks are taken out of the parts and
    returned apart, with the tag of the scan that found them.
    """
    boot, parts, reports = [], [], []
    current = None
    report = None
    for raw in text.splitlines():
        line = clean(raw)
        bare = harness.strip(raw)
        if report is not None:
            if _KM_END.search(line):
                reports.append(report)
                report = None
            else:
                report[1].append(bare)
            continue
        m = _KM_BEGIN.search(line)
        if m:
            report = (m.group(1), [])
            continue
        m = _BEGIN.search(line)
        if m:
            current = Part(m.group(1), begin_at=float(m.group(2)))
            parts.append(current)
        if current is None:
            boot.append(raw)
            continue
        current.lines.append(raw)
        m = _END.search(line)
        if m and m.group(1) == current.name:
            current.status = int(m.group(2))
        m = _DONE.search(line)
        if m and m.group(1) == current.name:
            current.done = True
    if report is not None:
        reports.append(report)
    return boot, parts, [(tag, "\n".join(lines)) for tag, lines in reports]


def leak_objects(report):
    """Split a kmemleak report into one text per unreferenced object."""
    objects = []
    for line in report.splitlines():
        if _KM_OBJECT.match(line.strip()):
            objects.append([])
        if objects:
            objects[-1].append(line)
    return ["\n".join(o) for o in objects]


def jiffies_to_uptime(jiffies, hz):
    """Seconds since boot of a (64-bit) jiffies value: jiffies start at
    INITIAL_JIFFIES, (unsigned long)(unsigned int)(-300 * HZ)."""
    initial = (1 << 32) - 300 * hz
    return ((jiffies - initial) % (1 << 64)) / hz


def attribute_leaks(parts, reports, hz):
    """Map each leaked object to the part that was running when it was
    allocated. Returns {part name or "boot": [object text]}."""
    blamed = {}
    for _tag, report in reports:
        for obj in leak_objects(report):
            m = _KM_JIFFIES.search(obj)
            owner = parts[-1].name if parts else "boot"
            if m and hz:
                at = jiffies_to_uptime(int(m.group(1)), hz)
                owner = "boot"
                for part in parts:
                    if part.begin_at <= at:
                        owner = part.name
            blamed.setdefault(owner, []).append(obj)
    return blamed


def kernel_hz(kdir):
    """CONFIG_HZ of the kernel build, or None."""
    try:
        for line in (Path(kdir) / ".config").read_text().splitlines():
            if line.startswith("CONFIG_HZ="):
                return int(line.split("=", 1)[1])
    except OSError:
        pass
    return None


def _read(path):
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class _Tail:
    """The complete lines appended to a file since the last call."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.rest = b""

    def new_lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        return [clean(line.decode(errors="replace")) for line in lines]


def _session(sid):
    """The processes of session SID (tools/vm/run was started as its
    leader; timeout(1) puts QEMU in a process group of its own, but not in
    another session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def _kill(proc):
    """End the runner and the QEMU under it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _session(proc.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        if not _session(proc.pid):
            return


def run_guest(items, log, cmdline="", mem=None, boot_timeout=300,
              on_progress=None):
    """Run ITEMS in one guest, booting a new one after a crash or a hang.

    Returns one Outcome per item, in order. on_progress(item, status, secs)
    is called as each item finishes in the guest (its results come once
    the guest is gone: a later kmemleak scan may still blame it). LOG is
    the stem of the guest logs: the k-th boot's console goes to
    LOG-k.log.
    """
    kdir = os.environ.get("KDIR") or subprocess.run(
        [str(TOP / "tools" / "kernel.sh"), "--print-kdir"],
        stdout=subprocess.PIPE, text=True).stdout.strip()
    hz = kernel_hz(kdir)
    outcomes = []
    todo = list(items)
    boot = 0
    while todo:
        boot += 1
        guest_log = log.parent / f"{log.name}-{boot}.log"
        outs, todo = _boot_once(todo, guest_log, cmdline, mem, boot_timeout,
                                hz, on_progress)
        outcomes += outs
    return outcomes


def _boot_once(todo, guest_log, cmdline, mem, boot_timeout, hz, on_progress):
    """One guest for TODO: returns (outcomes, the items left to run)."""
    if guest_log.exists():
        guest_log.unlink()
    words = {}
    for word in (cmdline + " emfs_batch=" + ",".join(i.name for i in todo)
                 + " " + os.environ.get("EMFS_VM_CMDLINE", "")).split():
        words[word.split("=", 1)[0]] = word
    env = dict(os.environ, EMFS_VM_CMDLINE=" ".join(words.values()))
    budget = boot_timeout + sum(i.timeout + 60 for i in todo)
    proc = subprocess.Popen(
        [str(TOP / "tools" / "vm" / "run"), "--quiet", "--timeout", str(budget),
         "--log", str(guest_log)] + (["--mem", mem] if mem else []) + [str(BATCH)],
        cwd=TOP, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    seen = {}           # name -> host time its begin marker was seen
    seen_done = {}      # name -> host time its done marker was seen
    begun = []          # names whose begin marker was seen, in order
    status = {}         # name -> exit status from its end marker
    finished = 0        # items whose "done" marker was seen
    killed = None       # (index in todo, state) when the guest was ended here
    log = _Tail(guest_log)
    while True:
        running = proc.poll() is None
        now = time.monotonic()
        # Only the new lines, and of them only the markers: the guest
        # shares the host's two cores with this loop.
        for line in log.new_lines():
            if "emfs-batch: " not in line:
                continue
            m = _BEGIN.search(line)
            if m:
                begun.append(m.group(1))
                seen[m.group(1)] = now
            m = _END.search(line)
            if m:
                status[m.group(1)] = int(m.group(2))
            m = _DONE.search(line)
            if m:
                seen_done[m.group(1)] = now
        while finished < len(begun) and begun[finished] in seen_done:
            name = begun[finished]
            if on_progress:
                on_progress(todo[finished], status.get(name),
                            seen_done[name] - seen[name])
            finished += 1
        if not running:
            break
        if begun and begun[-1] not in seen_done:
            i = len(begun) - 1
            if now - seen[begun[i]] > todo[i].timeout:
                killed = (i, "timeout")
        elif not begun and now - started > boot_timeout:
            killed = (0, "not booted")
        if killed:
            _kill(proc)
            break
        time.sleep(1)
    proc.wait()
    end = time.monotonic()
    text = _read(guest_log)
    boot_lines, parts, reports = split_log(text)
    blamed = attribute_leaks(parts, reports, hz)
    scanned = any(_KM_SCANNED in line for line in text.splitlines())

    outcomes = []
    for i, item in enumerate(todo):
        out = Outcome(item, guest_log=guest_log, scanned=scanned)
        if i < len(parts):
            part = parts[i]
            out.text = "\n".join(part.lines)
            out.status = part.status
            out.left = [m.group(2) for m in map(_LEFT.match, map(clean, part.lines))
                        if m and m.group(1) == item.name]
            out.leaks = blamed.get(item.name, [])
            t0 = seen.get(item.name, started)
            t1 = seen.get(parts[i + 1].name, end) if i + 1 < len(parts) else end
            out.seconds = min(t1, seen_done.get(item.name, t1)) - t0
            if part.done:
                out.state = "done"
            elif killed and killed[0] == i:
                out.state = killed[1]
            else:
                out.state = "crashed"
        elif killed and killed[0] == i or not parts:
            # The guest never reached its first script.
            out.state = "not booted"
            out.text = text
            out.seconds = end - started
        else:
            # The guest ended between two scripts: run the rest again.
            return outcomes, todo[i:]
        if i == 0 and parts:
            # What the kernel reported while booting counts against the
            # guest's first script.
            out.text = "\n".join(boot_lines + [out.text])
            out.leaks = blamed.get("boot", []) + out.leaks
        outcomes.append(out)
        if out.state == "not booted":
            # Booting again would fail again: report the rest as not run.
            for rest in todo[i + 1:]:
                outcomes.append(Outcome(rest, state="not booted",
                                        text="", guest_log=guest_log))
            return outcomes, []
        if out.state != "done":
            return outcomes, todo[i + 1:]
    return outcomes, []
