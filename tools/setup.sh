#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/setup.sh - install what building and testing emfs needs.
#
# Idempotent: every step first checks whether its result is already present
# and says so. A failed step stops the script with a message naming it.
#
# Installs:
#   Debian packages: the Rust toolchain the kernel accepts (rustc-web and its
#     library source), libclang for bindgen, the kernel build dependencies,
#     QEMU, and the test clients (xfsprogs, e2fsprogs, fio, trace-cmd,
#     stress-ng, acl).
#   Into $EMFS_CACHE/cargo: bindgen-cli, the fsx file system exerciser and
#     the pjdfstest POSIX test suite.
#   Into $EMFS_CACHE/venv: the Python packages the host tools use.

set -euo pipefail

. "$(dirname "$0")/lib.sh"

DEB_PKGS=(
	rustc-web rust-web-src rust-web-clippy rustfmt-web libclang-19-dev clang-19 lld-19 llvm-19
	flex bison bc libelf-dev libssl-dev cpio kmod
	qemu-system-x86 xfsprogs e2fsprogs fio trace-cmd stress-ng acl
	python3-venv python3-sphinx
)
BINDGEN_VERSION=0.72.1
FSX_VERSION=0.3
PJDFSTEST_VERSION=0.2.2

step "Debian packages"
missing=()
for p in "${DEB_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	say "all ${#DEB_PKGS[@]} packages present"
else
	say "installing: ${missing[*]}"
	run_step "apt-get update" apt_get update -q
	run_step "apt-get install" apt_get install -y -q --no-install-recommends "${missing[@]}"
fi

# cargo_tool BIN CRATE VERSION: CRATE at VERSION (a cargo requirement) into
# $EMFS_CACHE/cargo, unless BIN there already reports that version.
cargo_tool() {
	local bin=$EMFS_CACHE/cargo/bin/$1 crate=$2 version=$3
	step "$crate ${version#\~} (cargo, into $EMFS_CACHE/cargo)"
	if [ -x "$bin" ] && "$bin" --version | grep -q " ${version#\~}"; then
		say "present: $("$bin" --version)"
	else
		run_step "cargo install $crate" cargo install --locked -q \
			--root "$EMFS_CACHE/cargo" "$crate" --version "$version"
	fi
}
cargo_tool bindgen bindgen-cli "$BINDGEN_VERSION"
cargo_tool fsx fsx "~$FSX_VERSION"
cargo_tool pjdfstest pjdfstest "$PJDFSTEST_VERSION"

step "Python packages (venv in $EMFS_CACHE/venv)"
if [ -x "$EMFS_CACHE/venv/bin/python3" ] &&
   "$EMFS_CACHE/venv/bin/python3" -c 'import matplotlib' 2>/dev/null; then
	say "present"
else
	run_step "python3 -m venv" python3 -m venv "$EMFS_CACHE/venv"
	run_step "pip install" "$EMFS_CACHE/venv/bin/pip" install -q matplotlib
fi

step "toolchain check"
say "rustc:   $(/usr/bin/rustc --version)"
say "bindgen: $("$EMFS_CACHE/cargo/bin/bindgen" --version)"
say "qemu:    $(qemu-system-x86_64 --version | head -1)"
say "setup complete"
