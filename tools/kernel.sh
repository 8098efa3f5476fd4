#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/kernel.sh - fetch, configure and build the emfs development kernel.
#
# Usage: tools/kernel.sh [--print-kdir]
#
# The flavour comes from $EMFS_KERNEL (make's KERNEL=): "dev" (the default)
# is tools/kconfig/emfs.config built with gcc; "kasan" adds
# tools/kconfig/kasan.config and builds with LLVM=-19; "perf" adds
# tools/kconfig/perf.config (no lockdep or kmemleak: for benchmarks). The extra make
# arguments of a flavour are kept in <build>/.emfs-kmake-args, so that the
# module is built with the same compiler as its kernel.
#
# The source is Debian's linux-source-$KVER package, fetched with a private
# apt configuration (own sources list, lists and cache directories under
# $EMFS_CACHE) that reuses the Debian mirror already configured on this
# machine; nothing is installed into the system from that suite.
#
# The build lives in $EMFS_CACHE/kernel/<key>, where the key combines the
# kernel version, the hash of the configuration fragment and the rustc
# version. A finished build is marked with a stamp and reused as is.
# With --print-kdir, only print the build directory for the current key.

set -euo pipefail

. "$(dirname "$0")/lib.sh"

KVER=${EMFS_KVER:-7.3}
SUITE=${EMFS_KSUITE:-trixie-backports}
FRAGMENT=${EMFS_KCONFIG:-$EMFS_TOP/tools/kconfig/emfs.config}
FLAVOUR=${EMFS_KERNEL:-dev}
case "$FLAVOUR" in
dev) fragments=("$FRAGMENT"); flavour_args="" ;;
kasan) fragments=("$FRAGMENT" "$EMFS_TOP/tools/kconfig/kasan.config")
	flavour_args="LLVM=-19" ;;
perf) fragments=("$FRAGMENT" "$EMFS_TOP/tools/kconfig/perf.config"); flavour_args="" ;;
*) die "unknown kernel flavour '$FLAVOUR' (KERNEL=dev, kasan or perf)" ;;
esac

rustc_ver=$(/usr/bin/rustc --version 2>/dev/null | awk '{print $2}') ||
	die "/usr/bin/rustc is missing: run tools/setup.sh first"
frag_hash=$(cat "${fragments[@]}" | sha256sum | cut -c1-12)
key="linux-$KVER-$FLAVOUR-$frag_hash-rustc-$rustc_ver"
KDIR="$EMFS_CACHE/kernel/$key"

if [ "${1:-}" = "--print-kdir" ]; then
	echo "$KDIR"
	exit 0
fi

if [ -f "$KDIR/.emfs-built" ]; then
	say "kernel cached: $KDIR"
	exit 0
fi

# The mirror this machine's apt already uses for Debian itself.
debian_mirror() {
	apt-get indextargets --format '$(REPO_URI) $(ORIGIN) $(LABEL)' 2>/dev/null |
		awk '$2 == "Debian" && $3 == "Debian" { print $1; exit }'
}

step "Linux $KVER source (Debian linux-source-$KVER, $SUITE)"
src="$EMFS_CACHE/src/linux-source-$KVER"
if [ -f "$src/.emfs-unpacked" ]; then
	say "present: $src"
else
	mirror=$(debian_mirror)
	[ -n "$mirror" ] || die "no Debian mirror found in the apt configuration"
	say "mirror: $mirror"
	apt_dir="$EMFS_CACHE/apt"
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/dl"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $SUITE main" \
		>"$apt_dir/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
		-o "Dir::Etc::SourceParts=/nonexistent"
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
		-o "APT::Get::List-Cleanup=0"
		-o "APT::Sandbox::User=root")
	run_step "apt-get update ($SUITE)" apt-get "${apt_opts[@]}" update -q
	rm -f "$apt_dir"/dl/linux-source-"$KVER"_*.deb
	(cd "$apt_dir/dl" && apt-get "${apt_opts[@]}" download "linux-source-$KVER") ||
		die "step 'apt-get download linux-source-$KVER' failed"
	deb=$(ls "$apt_dir"/dl/linux-source-"$KVER"_*.deb)
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	run_step "dpkg-deb -x" dpkg-deb -x "$deb" "$src.tmp/pkg"
	tarball=$(ls "$src.tmp"/pkg/usr/src/linux-source-"$KVER".tar.*)
	run_step "untar" tar -C "$src.tmp" -xf "$tarball"
	mv "$src.tmp/linux-source-$KVER" "$src"
	rm -rf "$src.tmp"
	touch "$src/.emfs-unpacked"
	say "unpacked: $src ($(make -s -C "$src" kernelversion))"
fi

step "configure $KDIR"
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
kmake=(make -C "$src" O="$KDIR" RUSTC=/usr/bin/rustc
	BINDGEN="$EMFS_CACHE/cargo/bin/bindgen" $flavour_args ${EMFS_KMAKE_ARGS:-})
mkdir -p "$KDIR"
run_step "make tinyconfig" "${kmake[@]}" -s tinyconfig
run_step "merge fragment" "$src/scripts/kconfig/merge_config.sh" -m -O "$KDIR" \
	"$KDIR/.config" "${fragments[@]}" >/dev/null
run_step "make olddefconfig" "${kmake[@]}" -s olddefconfig
run_step "make rustavailable" "${kmake[@]}" -s rustavailable

# Every option the fragments ask for must have survived olddefconfig; a
# later fragment's setting of an option replaces an earlier one's.
bad=0
declare -A wanted=()
order=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		opt=${line%%=*}
		[ -n "${wanted[$opt]:-}" ] || order+=("$opt")
		wanted[$opt]=$line ;;
	esac
done < <(cat "${fragments[@]}")
for opt in "${order[@]}"; do
	line=${wanted[$opt]}
	case "$line" in
	CONFIG_*=n)
		opt=${line%%=*}
		if grep -q "^$opt=" "$KDIR/.config"; then
			say "fragment: $opt is set but the fragment asks for n"; bad=1
		fi ;;
	CONFIG_*=*)
		grep -qx "$line" "$KDIR/.config" ||
			{ say "fragment: $line did not stick"; bad=1; } ;;
	esac
done
[ $bad -eq 0 ] || die "configuration fragment not satisfied (see above)"

step "build (make -j$(($(nproc) + 1)), about 5 to 10 minutes on 2 cores)"
start=$(date +%s)
run_step "kernel build" "${kmake[@]}" -s -j$(($(nproc) + 1))
echo "$flavour_args" >"$KDIR/.emfs-kmake-args"
touch "$KDIR/.emfs-built"
say "built in $(($(date +%s) - start)) s: $KDIR"

# Older builds of this flavour (another fragment or rustc) are stale now.
for old in "$EMFS_CACHE/kernel/linux-$KVER-$FLAVOUR-"*; do
	[ "$old" = "$KDIR" ] || [ ! -d "$old" ] || { say "removing stale $old"; rm -rf "$old"; }
done
