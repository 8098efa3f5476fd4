#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# POSIX conformance: pjdfstest, as root, on tmpfs and on emfs in the same
# guest, with the same configuration (tools/testing/emfs/pjdfstest/). Both
# counts are printed. Then POSIX ACLs, which pjdfstest does not cover: the
# same tour on both (tools/testing/emfs/acl_tour.sh).
#
# What it must show: every pjdfstest test that tmpfs passes, emfs passes
# (each test is a case of this scenario), and the ACL tour's transcript is
# the same on both; tmpfs passing most of the suite, and the tour showing
# ACLs at work on tmpfs, are checked too, so that a broken set-up cannot
# pass by failing both.

set -u
. "${0%/*}/../lib.sh"

conf=$testing_dir/pjdfstest/pjdfstest.toml
insmod "$EMFS_KO" || exit 1
work=/tmp/posix
mkdir -p "$work/tmpfs" "$work/emfs" "$work/other"
check "mount tmpfs" mount -t tmpfs -o size=256M tmpfs "$work/tmpfs"
# The EXDEV tests' other filesystem.
check "mount another tmpfs" mount -t tmpfs -o size=16M tmpfs "$work/other"
check "mount emfs" emfs_mount "$work/emfs" size=256M

# run FS: pjdfstest on $work/FS, its per-test results in $work/FS.out.
run() {
	local start=$SECONDS
	(cd /tmp && pjdfstest -c "$conf" -p "$work/$1" -s "$work/other") >"$work/$1.out" 2>&1
	note "pjdfstest on $1: $(grep '^Summary' "$work/$1.out") ($((SECONDS - start)) s)"
}
run tmpfs
run emfs

# Per-test results: "name ok", "name FAILED" or "name skipped".
results() { awk 'NF == 2 && $2 ~ /^(ok|FAILED|skipped)$/ { print $1, $2 }' "$work/$1.out" | sort; }
results tmpfs >"$work/tmpfs.res"
results emfs >"$work/emfs.res"
passed() { awk '$2 == "ok"' "$work/$1.res" | wc -l; }
tmpfs_ok=$(passed tmpfs)
emfs_ok=$(passed emfs)
note "passed: tmpfs $tmpfs_ok, emfs $emfs_ok of $(wc -l <"$work/tmpfs.res") tests"
check "tmpfs passes 350 tests or more ($tmpfs_ok)" [ "$tmpfs_ok" -ge 350 ]

# Each test tmpfs passes is a case: passed on emfs too, or its message.
# One awk for all (a program per test costs seconds under emulation).
awk 'NR == FNR { emfs[$1] = $2; next }
     $2 == "ok" { print (emfs[$1] == "ok" ? "ok" : "not"), $1 }' \
	"$work/emfs.res" "$work/tmpfs.res" >"$work/cases"
while read -r res name; do
	if [ "$res" = ok ]; then
		note "ok: $name"
	else
		note "not ok: $name"
		awk -v n="$name" '$1 == n { p = 1; next } p && /^\t/ { print; next } { p = 0 }' \
			"$work/emfs.out" | head -5
		fail=1
	fi
done <"$work/cases"

# POSIX ACLs, which pjdfstest does not try: the same tour on both
# (tools/testing/emfs/acl_tour.sh), and the transcripts compared. That the
# tour shows ACLs at work is checked on tmpfs's, so that both failing the
# same way cannot pass.
for fs in tmpfs emfs; do
	mkdir "$work/$fs/acl"
	bash "$testing_dir/acl_tour.sh" "$work/$fs/acl" >"$work/acl.$fs" 2>&1
	rmdir "$work/$fs/acl"
done
note "ACL tour: $(grep -c . "$work/acl.tmpfs") lines on tmpfs, $(grep -c . "$work/acl.emfs") on emfs; emfs's:"
sed 's/^/    /' "$work/acl.emfs"
check "ACL tour: a named user's entry lets nobody write" \
	grep -qx "nobody: allowed: sh -c echo nobody >>f" "$work/acl.tmpfs"
check "ACL tour: and daemon, without one, is refused" \
	grep -qx "daemon: refused: sh -c echo daemon >>f" "$work/acl.tmpfs"
check "ACL tour: an inherited default ACL lets nobody create" \
	grep -qx "nobody: allowed: touch d/new" "$work/acl.tmpfs"
if diff -u "$work/acl.tmpfs" "$work/acl.emfs" >"$work/acl.diff"; then
	note "ok: ACL tour: emfs's transcript is tmpfs's"
else
	note "not ok: ACL tour: emfs's transcript is tmpfs's"
	head -60 "$work/acl.diff"
	fail=1
fi

# Not cases: what tmpfs fails or skips too, for the record.
while read -r name res; do
	[ "$res" = ok ] && continue
	note "tmpfs $res, emfs $(awk -v n="$name" '$1 == n { print $2 }' "$work/emfs.res"): $name"
	awk -v n="$name" '$1 == n { p = 1; next } p && /^\t/ { print; next } { p = 0 }' \
		"$work/tmpfs.out" | head -2
done <"$work/tmpfs.res"

umount "$work/tmpfs" "$work/other"
check "umount emfs" umount "$work/emfs"
check "rmmod" rmmod emfs
exit "${fail:-0}"
