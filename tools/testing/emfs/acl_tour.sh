#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# acl_tour.sh DIR: POSIX ACLs on the filesystem at DIR, as a transcript
# that names no inode, time or filesystem, so that the posix scenario can
# compare emfs's with tmpfs's line for line. Run as root; "nobody" and
# "daemon" try their access through setpriv.
#
# What it goes through: the umask a filesystem with ACLs applies itself;
# named-user entries, the mask and the group bits; chmod and the mask;
# default ACLs inherited by files and directories (and by FIFOs and
# device nodes), masked by the mode asked for; an ACL equal to the mode,
# kept as the mode alone; removal; the names listxattr gives; access
# checks granted and refused by entries.

set -u
cd "$1" || exit 1
umask 022

show() { echo "-- $*"; }
acl() { getfacl -cp "$@" 2>&1 | grep -v '^$'; }
mode() { stat -c '%n %A' "$@"; }
names() {
	python3 -c 'import os, sys
for p in sys.argv[1:]:
    print(p, sorted(os.listxattr(p, follow_symlinks=False)))' "$@"
}
# as USER GROUP CMD...: CMD as USER, without root's groups and powers.
as() {
	local u=$1 g=$2
	shift 2
	if setpriv --reuid="$u" --regid="$g" --clear-groups "$@" 2>/dev/null; then
		echo "$u: allowed: $*"
	else
		echo "$u: refused: $*"
	fi
}

show "the umask, applied by the filesystem"
touch f
mkdir d
mkfifo p
mode f d p
names f d

show "a named user and the mask"
chmod 600 f
setfacl -m u:nobody:rw f
acl f
mode f
names f
as nobody nogroup sh -c 'echo nobody >>f'
as daemon daemon sh -c 'echo daemon >>f'
cat f

show "chmod sets the mask"
chmod 640 f
acl f
as nobody nogroup sh -c 'echo again >>f'
as nobody nogroup cat f
chmod 660 f
as nobody nogroup sh -c 'echo again >>f'

show "a named group"
setfacl -m g:daemon:r f
acl f
as daemon daemon cat f

show "an ACL that says no more than the mode"
touch g
setfacl -m u::rwx,g::r-x,o::--- g
acl g
mode g
names g

show "removal"
setfacl -b f
acl f
mode f
names f

show "default ACLs"
setfacl -d -m u:nobody:rwx,g::rx,o::- d
setfacl -m u:nobody:rwx d
acl d
names d
touch d/file
mkdir d/dir
mkfifo d/fifo
mknod d/chr c 1 3
python3 -c 'import os; os.close(os.open("d/mode600", os.O_CREAT | os.O_WRONLY, 0o600))'
ln -s file d/link
mode d/file d/dir d/fifo d/chr d/mode600
acl d/file d/dir d/mode600
names d/file d/dir d/fifo d/link
as nobody nogroup sh -c 'echo inherited >d/file'
as daemon daemon sh -c 'echo inherited >d/file'
as nobody nogroup touch d/new
as daemon daemon touch d/new2
mkdir d/dir/sub
acl d/dir/sub

show "removing the default ACL"
setfacl -k d
acl d
touch d/after
mode d/after
names d/after

show "ACLs on special files"
setfacl -m u:daemon:r p
acl p
mode p

show "the group bits of a setgid directory with a default ACL"
mkdir s
chgrp daemon s
chmod 2775 s
setfacl -d -m g::rwx s
mkdir s/t
mode s s/t
acl s/t

show "errors"
setfacl -m u:nobody:rw link-that-is-not-there 2>&1 | sed 's/^setfacl: //'
setfacl -d -m u:nobody:rw f 2>&1 | sed 's/^setfacl: //'

show "done"
rm -rf -- ./*
ls -A
