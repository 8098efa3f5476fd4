# SPDX-License-Identifier: GPL-2.0
#
# tools/lib.sh - shared helpers for the emfs host scripts. Sourced, not run.

# Where built kernels, cargo-installed tools and downloads live: outside the
# checkout, shared between clones.
: "${EMFS_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/emfs}"
export EMFS_CACHE
mkdir -p "$EMFS_CACHE"

EMFS_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export EMFS_TOP

# The kernel flavour (make KERNEL=dev|kasan; see tools/kernel.sh). The
# module is built out of the source tree, in out/<flavour>/ (Kbuild's MO=),
# so that a module for each flavour can be built from one checkout.
: "${EMFS_KERNEL:=dev}"
export EMFS_KERNEL

emfs_module_dir() {
	echo "$EMFS_TOP/out/$EMFS_KERNEL"
}

step() { printf '\n==> %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
die() { printf 'emfs: error: %s\n' "$*" >&2; exit 1; }

# run_step NAME CMD...: run CMD, and on failure stop naming the step.
run_step() {
	local name=$1
	shift
	"$@" || die "step '$name' failed (command: $*)"
}

# apt_get ARGS...: apt-get as root (sudo when not root).
apt_get() {
	export DEBIAN_FRONTEND=noninteractive
	if [ "$(id -u)" -eq 0 ]; then
		apt-get "$@"
	else
		sudo apt-get "$@"
	fi
}
