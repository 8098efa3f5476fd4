#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/build.sh - build the emfs module and run its lint gates.
#
# Usage: tools/build.sh kdir|module|rustfmt|checkpatch|docs|rust-analyzer|ffi|lint|clean
#
#   kdir        print the kernel build directory in use
#   module      build emfs.ko with CLIPPY=1 (after set-up and the cached
#               kernel if needed); a clippy warning fails the build with
#               exit status 3 (the module was built)
#   rustfmt     check the Rust sources against the kernel's rustfmt config
#   checkpatch  run the kernel's checkpatch.pl on the C files
#   docs        build Documentation/ with Sphinx into out/docs (warnings fail)
#   rust-analyzer  write rust-project.json, so that editors resolve the
#               kernel crate in the module's sources
#   ffi         check that no C declaration in the Rust sources is written
#               by hand
#   lint        rustfmt, the module build (clippy) and checkpatch
#   clean       remove build products
#
# With KDIR set, that kernel build is used (it must have Rust enabled);
# otherwise the development kernel from tools/kernel.sh, built on first use.

set -euo pipefail

. "$(dirname "$0")/lib.sh"

export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
RUSTC=${RUSTC:-/usr/bin/rustc}
CLIPPY_DRIVER=${CLIPPY_DRIVER:-/usr/bin/clippy-driver}
BINDGEN=${BINDGEN:-$EMFS_CACHE/cargo/bin/bindgen}

# resolve_kdir: set KDIR, building the development kernel if needed, and
# refuse a kernel build that cannot build Rust modules.
resolve_kdir() {
	if [ -z "${KDIR:-}" ]; then
		"$EMFS_TOP/tools/setup.sh" >/dev/null ||
			die "set-up failed; run tools/setup.sh to see why"
		KDIR=$("$EMFS_TOP/tools/kernel.sh" --print-kdir)
		[ -f "$KDIR/.emfs-built" ] || "$EMFS_TOP/tools/kernel.sh"
	fi
	[ -f "$KDIR/.config" ] ||
		die "KDIR=$KDIR is not a configured kernel build directory (no .config)"
	grep -q '^CONFIG_RUST=y' "$KDIR/.config" ||
		die "KDIR=$KDIR was built without Rust support (CONFIG_RUST is not set in its .config); emfs is a Rust module: use a kernel built with CONFIG_RUST=y, or leave KDIR unset to use the cached development kernel"
	[ -f "$KDIR/rust/libkernel.rmeta" ] ||
		die "KDIR=$KDIR has CONFIG_RUST=y but no built kernel crate (rust/libkernel.rmeta): build that kernel first"
	grep -q '^CONFIG_KUNIT=y' "$KDIR/.config" ||
		say "warning: KDIR=$KDIR has no built-in KUnit; the KUnit suites will not be compiled"
	export KDIR
}

# kbuild ARGS...: make in the kernel build for the module, with the
# compiler the kernel was built with (.emfs-kmake-args, e.g. LLVM=-19) and
# the module's output directory for the flavour.
kbuild() {
	local mo extra=""
	mo=$(emfs_module_dir)
	mkdir -p "$mo"
	[ -f "$KDIR/.emfs-kmake-args" ] && extra=$(cat "$KDIR/.emfs-kmake-args")
	# shellcheck disable=SC2086
	make -C "$KDIR" M="$EMFS_TOP" RUSTC="$RUSTC" BINDGEN="$BINDGEN" \
		CLIPPY_DRIVER="$CLIPPY_DRIVER" MO="$mo" $extra "$@"
}

# The module is always built with CLIPPY=1: clippy-driver compiles exactly
# as rustc does and adds its lints, so the build the tests load is the one
# that was linted, and no second build is needed for the lint gate. A
# warning fails the build, and the objects are removed so that the next
# build lints them again (Kbuild would otherwise find them up to date).
cmd_module() {
	resolve_kdir
	local log mo
	mo=$(emfs_module_dir)
	log=$(mktemp)
	if ! kbuild -s CLIPPY=1 modules >"$log" 2>&1; then
		cat "$log"
		rm -f "$log"
		die "module build failed"
	fi
	cat "$log"
	# objtool's warnings mean code it cannot follow (a panic path it does
	# not know ends): treat them as errors.
	if grep -q "warning: objtool" "$log"; then
		rm -f "$log"
		die "objtool warnings in the module build"
	fi
	if grep -qE '^(warning|error)' "$log"; then
		rm -f "$log" "$mo/rust/emfs_main.o" "$mo"/samples/*.o
		printf 'emfs: error: %s\n' "clippy: the warnings above (the module is built with CLIPPY=1)" >&2
		exit 3
	fi
	rm -f "$log"
	say "built $mo/emfs.ko against $KDIR (clippy: clean)"
}

# The crate roots; rustfmt follows their `mod` declarations.
crate_roots() {
	(cd "$EMFS_TOP" && ls rust/emfs_main.rs samples/*.rs 2>/dev/null)
}

cmd_rustfmt() {
	resolve_kdir
	# shellcheck disable=SC2046
	(cd "$EMFS_TOP" && /usr/bin/rustfmt --check --edition 2021 \
		--config-path "$KDIR/source/.rustfmt.toml" $(crate_roots)) ||
		die "rustfmt: the files above are not formatted (fix: make fmt)"
	say "rustfmt: clean"
}

cmd_fmt() {
	resolve_kdir
	# shellcheck disable=SC2046
	(cd "$EMFS_TOP" && /usr/bin/rustfmt --edition 2021 \
		--config-path "$KDIR/source/.rustfmt.toml" $(crate_roots))
}

cmd_checkpatch() {
	resolve_kdir
	local files
	files=$(cd "$EMFS_TOP" && git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^out/' || true)
	[ -n "$files" ] || { say "checkpatch: no C files"; return; }
	# shellcheck disable=SC2086
	(cd "$EMFS_TOP" && "$KDIR/source/scripts/checkpatch.pl" --no-tree \
		--quiet --show-types --ignore SPDX_LICENSE_TAG,FILE_PATH_CHANGES -f $files) ||
		die "checkpatch: the C files above need fixing"
	say "checkpatch: clean"
}

cmd_docs() {
	rm -rf "$EMFS_TOP/out/docs"
	sphinx-build -q -W -b html -C -D master_doc=index -D project=emfs \
		-D html_theme=classic "$EMFS_TOP/Documentation" "$EMFS_TOP/out/docs" ||
		die "docs: Sphinx reported the problems above"
	say "docs: out/docs/index.html"
}

# The kernel's generator (scripts/generate_rust_analyzer.py, through 'make
# M=... rust-analyzer') describes the kernel's crates and every crate root
# named in a Kbuild file next to it: that finds samples/walkthrough.rs but
# not rust/emfs_main.rs, which the top-level Kbuild names. It is added here
# with the sample's dependencies and configuration; the sample gets the
# --cfg its Kbuild gives it. The result is checked: both crates, depending
# on a kernel crate whose sources exist.
cmd_rust_analyzer() {
	resolve_kdir
	# The kernel writes it in the module's output directory (MO=); editors
	# look for it at the top of the sources.
	local made out=$EMFS_TOP/rust-project.json
	made=$(emfs_module_dir)/rust-project.json
	rm -f "$made"
	kbuild -s rust-analyzer >/dev/null || die "rust-analyzer: the kernel's generator failed"
	[ -s "$made" ] || die "rust-analyzer: the kernel wrote no rust-project.json"
	python3 - "$made" "$EMFS_TOP" "$out.new" "$(emfs_module_dir)" <<'PY' || die "rust-analyzer: rust-project.json is not usable"
import json, os, sys
made, top, out, mo = sys.argv[1:5]
project = json.load(open(made))
crates = project["crates"]
index = {os.path.realpath(c["root_module"]): i for i, c in enumerate(crates)}
sample = index.get(os.path.realpath(f"{top}/samples/walkthrough.rs"))
if sample is None:
    sys.exit("the sample crate is missing: the generator did not read samples/Kbuild")
crates[sample]["cfg"] = crates[sample]["cfg"] + ["emfs_library"]
main = os.path.realpath(f"{top}/rust/emfs_main.rs")
if main not in index:
    crates.append(dict(crates[sample], display_name="emfs_main",
                       root_module=main, cfg=crates[sample]["cfg"][:-1]))
# Where Kbuild generates each crate's bindings (rust/glue/ffi.rs).
generated = {main: f"{mo}/rust", os.path.realpath(f"{top}/samples/walkthrough.rs"): f"{mo}/samples"}
for root in (main, os.path.realpath(f"{top}/samples/walkthrough.rs")):
    crate = next(c for c in crates if os.path.realpath(c["root_module"]) == root)
    crate["env"] = dict(crate.get("env", {}), EMFS_GENERATED=generated[root])
    names = {crates[d["crate"]]["display_name"]: crates[d["crate"]] for d in crate["deps"]}
    if "kernel" not in names or not os.path.exists(names["kernel"]["root_module"]):
        sys.exit(f"{root}: no kernel crate among its dependencies")
if not os.path.isdir(project["sysroot"]):
    sys.exit(f"sysroot {project['sysroot']} does not exist")
json.dump(project, open(out, "w"), sort_keys=True, indent=4)
print(f"{len(crates)} crates")
PY
	mv "$out.new" "$out"
	rm -f "$made"
	say "rust-analyzer: rust-project.json"
}

# The C functions and types the Rust code uses are declared by bindgen
# (rust/bindings_helper.h, rust/glue/ffi.rs), so that each declaration is
# checked against its C prototype: a hand-written extern block or a struct
# laid out by hand to match C would escape that check.
cmd_ffi() {
	local found
	found=$(cd "$EMFS_TOP" && git grep --untracked -nE 'extern "C" \{|#\[repr\(C\)\]' -- 'rust/*.rs' 'samples/*.rs' || true)
	if [ -n "$found" ]; then
		printf '%s\n' "$found"
		die "ffi: declarations written by hand above; name them in rust/bindings_helper.h instead"
	fi
	say "ffi: every C declaration is generated"
}

case "${1:-}" in
kdir) resolve_kdir; echo "$KDIR" ;;
module) cmd_module ;;
rustfmt) cmd_rustfmt ;;
fmt) cmd_fmt ;;
checkpatch) cmd_checkpatch ;;
docs) cmd_docs ;;
rust-analyzer) cmd_rust_analyzer ;;
ffi) cmd_ffi ;;
lint) cmd_rustfmt; cmd_module; cmd_checkpatch ;;
clean)
	if KDIR=$("$EMFS_TOP/tools/kernel.sh" --print-kdir 2>/dev/null) && [ -d "$KDIR" ]; then
		kbuild -s clean || true
	fi
	rm -rf "$EMFS_TOP/out"
	;;
*) sed -n '4,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
