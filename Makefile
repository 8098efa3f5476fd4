# SPDX-License-Identifier: GPL-2.0
#
# emfs: top-level Makefile. Kbuild (the file next to this one) describes the
# module for the kernel's build system; this file is the developer's entry
# point. See README.md, or run 'make help'.

SHELL := /bin/bash

# Use an existing Rust-enabled kernel build instead of the cached dev kernel.
ifdef KDIR
export KDIR
endif

# Kernel flavour: dev (gcc, lockdep, kmemleak) or kasan (clang, KASAN, UBSAN),
# or perf (no debugging options that change timing). make bench uses perf
# unless KERNEL is given; everything else uses dev.
ifeq ($(filter bench,$(MAKECMDGOALS)),bench)
KERNEL ?= perf
else
KERNEL ?= dev
endif
export EMFS_KERNEL := $(KERNEL)

# make check SUITE=<kunit suites> / SCENARIO=<scenarios>, comma-separated;
# XTRACE=1 traces each scenario's commands with their start times.
SUITE ?=
SCENARIO ?=
XTRACE ?=
# make vm-run SCRIPT=path/to/script.sh
SCRIPT ?=
# make stress DURATION=600 (seconds)
DURATION ?= 300
# make bench SIZES=1000,100000 FS_MB=256
SIZES ?= 1000,100000,1000000
FS_MB ?= 256

.PHONY: all help setup kernel module run check check-full stress vm-run vm-shell bench lint \
	docs fmt clippy rustfmt checkpatch rust-analyzer clean

all: module

help:
	@echo 'emfs targets:'
	@echo '  run              boot the VM and run the demonstration; draws out/emfs-trace.png'
	@echo '  check            build, lint and run every test; ends with "N passed, N failed"'
	@echo '  check SUITE=a,b  only these KUnit suites;  check SCENARIO=a,b  only these scenarios'
	@echo '  check-full       check on the dev kernel, then on the KASAN kernel, then a long stress'
	@echo '  stress           the stress run for DURATION seconds (default 300), under lockdep'
	@echo '  module           build emfs.ko (set-up and dev kernel on first use)'
	@echo '  vm-run SCRIPT=f  run script f as root in the VM, exit with its status'
	@echo '  vm-shell         interactive shell in the VM'
	@echo '  bench            extent map, shrinker and fio benchmarks on the perf kernel'
	@echo '                   (SIZES=..., FS_MB=256; KERNEL=dev for the same on the dev kernel)'
	@echo '  lint             rustfmt check, CLIPPY=1 build, checkpatch, Sphinx'
	@echo '  fmt              format the Rust sources'
	@echo '  docs             build Documentation/ with Sphinx into out/docs'
	@echo '  rust-analyzer    write rust-project.json for editors (the kernel crate resolved)'
	@echo '  setup, kernel    install the toolchain / build the cached dev kernel'
	@echo '  clean            remove build products (the kernel cache stays)'
	@echo 'Variables: KDIR=<kernel build> to use your own Rust-enabled kernel;'
	@echo '  KERNEL=kasan to build and test against the KASAN/UBSAN kernel flavour;'
	@echo '  KERNEL=perf: no lockdep, kmemleak or other timing-changing debugging (make bench'"'"'s default).'

setup:
	@tools/setup.sh

kernel: setup
ifdef KDIR
	@tools/build.sh kdir >/dev/null && echo "using KDIR=$(KDIR)"
else
	@tools/kernel.sh
endif

module:
	@tools/build.sh module

# The demonstration's guest has 768 MiB, so that memory pressure comes
# quickly; its emfs-trace recording is drawn on the host.
run: module
	@tools/vm/run --mem 768M tools/demo/demo.sh
	@tools/emfs-trace plot out/vm/emfs-trace -o out/emfs-trace.png >/dev/null && \
		echo "emfs: the picture of the cache and its shrinker: out/emfs-trace.png"

check:
	@$(if $(XTRACE),EMFS_VM_CMDLINE="$$EMFS_VM_CMDLINE emfs_xtrace=1") \
		python3 tools/testing/check.py $(if $(SUITE),--suite $(SUITE)) \
		$(if $(SCENARIO),--scenario $(SCENARIO))

# Each step says how long it took (a cold run builds each kernel in its
# step's "kernel" phase).
timed = t=$$(date +%s); $(MAKE) --no-print-directory $(1); rc=$$?; \
	echo "check-full: make $(1): $$(($$(date +%s) - t)) s"; exit $$rc

check-full:
	@$(call timed,check)
	@$(call timed,check KERNEL=kasan)
	@$(call timed,stress DURATION=$(DURATION))

stress:
	@EMFS_STRESS_SECS=$(DURATION) EMFS_VM_CMDLINE="EMFS_STRESS_SECS=$(DURATION)" \
		python3 tools/testing/check.py --scenario stress

vm-run: module
	@test -n "$(SCRIPT)" || { echo 'usage: make vm-run SCRIPT=path/to/script.sh'; exit 2; }
	@tools/vm/run "$(SCRIPT)"

vm-shell: module
	@tools/vm/run --shell

bench: module
	@EMFS_VM_CMDLINE="kmemleak=off emfs_kernel=$(KERNEL) emfs_bench_sizes=$(SIZES) emfs_bench_fs_mb=$(FS_MB)" \
		tools/vm/run --timeout 1800 \
		tools/bench/bench.sh

lint: rustfmt clippy checkpatch docs

# The module build is the clippy build (tools/build.sh).
clippy: module

docs:
	@tools/build.sh docs

rustfmt checkpatch fmt rust-analyzer:
	@tools/build.sh $@

clean:
	@tools/build.sh clean
