# SPDX-License-Identifier: MIT
#
# Orchestration goals: each runs sub-makes in its own build directory, so
# they never touch $(O)'s configuration.

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# -j$(JOBS) unless make already runs with a jobserver (make -jN run).
sub-make = $(MAKE) --no-print-directory $(if $(findstring --jobserver,$(MAKEFLAGS))$(filter -j%,$(MAKEFLAGS)),,-j$(JOBS))

# `make check`: everything issue 2 asks of a check, with one summary line
# "N passed, N failed" at the end (scripts/check.sh says what each step is).
check:
	$(Q)env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL MAKE=$(MAKE) JOBS=$(JOBS) V=$(V) \
		$(srctree)/scripts/check.sh

# `make bench`: bench/*.c against every format, optimised, no debug checks,
# no sanitizers, in $(BENCH_O).
BENCH_O ?= build/bench
bench:
	$(Q)$(srctree)/scripts/install-deps.sh build
	$(Q)MAKE="$(MAKE)" $(srctree)/scripts/configure.sh $(BENCH_O) allformats_defconfig \
		--disable S2_DEBUG --disable S2_TRACE
	+$(Q)$(sub-make) O=$(BENCH_O) EXTRA_CFLAGS=-DNDEBUG benches
	$(Q)set -e; bins="$$($(MAKE) -s O=$(BENCH_O) print-bench-bins)"; \
		[ -n "$$bins" ] || { echo "bench: no bench/*.c yet"; exit 0; }; \
		for b in $$bins; do echo "== $$b"; $$b; done

# `make run`: the README's main job. RUN_GOAL is the hook that says what it
# runs; it is made in $(O) when O was given or $(O)/.config exists, else in
# build/run from configs/defconfig. Until the emulator examples land it runs
# tools/s2demo on the host (issue 5 points RUN_GOAL at the example boot).
# Like make check, it first installs what is missing.
RUN_GOAL ?= run-s2demo
RUN_O ?= $(if $(O-given)$(wildcard $(O)/.config),$(O),build/run)
run:
	$(Q)$(srctree)/scripts/install-deps.sh build
	+$(Q)$(sub-make) O=$(RUN_O) $(RUN_GOAL)

ifneq ($(filter run-s2demo,$(MAKECMDGOALS)),)
ifeq ($(wildcard tools/s2demo.c),)
$(error make run: tools/s2demo.c does not exist yet (the demonstration program of issue 2))
endif
endif
run-s2demo: hosted-only $(O)/tools/s2demo
	$(O)/tools/s2demo

# `make conformance`: every examples/<target>/run.sh (exit status 0 = pass),
# or what CONFORMANCE_RUNNERS lists; each counts as one step of `make check`.
CONFORMANCE_RUNNERS ?= $(sort $(wildcard examples/*/run.sh))
conformance:
ifeq ($(strip $(CONFORMANCE_RUNNERS)),)
	@echo "no conformance targets yet"
else
	$(Q)$(srctree)/scripts/install-deps.sh emu
	$(Q)S2_TEST_LOGDIR=build/conformance-logs V=$(V) S2_TEST_TIMEOUT=$(or $(CONFORMANCE_TIMEOUT),300) \
		$(srctree)/scripts/run-tests.sh $(CONFORMANCE_RUNNERS)
endif

# clang-format over every C source and header (kernel style, .clang-format).
CLANG_FORMAT ?= clang-format
format-dirs := core flush notifier env fmt include tests tools bench examples
format-files = $(shell find $(wildcard $(format-dirs)) -name '*.[ch]' 2>/dev/null | sort)
# Lists the files that differ from the style; V=1 also shows how.
format-check:
	$(call msg,FORMAT,check)
	$(Q)bad=0; for f in $(format-files); do \
		if ! $(CLANG_FORMAT) --dry-run -Werror $$f >/dev/null 2>&1; then \
			bad=$$((bad + 1)); echo "  needs formatting: $$f"; \
			$(if $(filter 1,$(V)),$(CLANG_FORMAT) --dry-run $$f 2>&1 | head -n 40;) \
		fi; \
	done; \
	if [ $$bad -ne 0 ]; then \
		echo "$$bad file(s) differ from .clang-format: \`make format\` rewrites them,"; \
		echo "\`clang-format --dry-run FILE\` shows where"; exit 1; fi

# Rewrites the sources in place.
format:
	$(Q)$(CLANG_FORMAT) -i $(format-files)

install-deps:
	$(Q)$(srctree)/scripts/install-deps.sh

help:
	@echo 'Configuration (writes $$(O)/.config, default O=build/default):'
	@echo '  defconfig            configs/defconfig: x86 EPT, hosted, 1 GiB leaves'
	@echo '  <name>_defconfig     configs/<name>_defconfig:' $(patsubst %_defconfig,%,$(notdir $(wildcard configs/*_defconfig)))
	@echo '  menuconfig nconfig   interactive'
	@echo '  olddefconfig         update .config, new options get their defaults'
	@echo '  oldconfig            update .config, asking for new options'
	@echo '  savedefconfig        minimal $$(O)/defconfig from .config'
	@echo 'Build (a missing .config starts from configs/defconfig):'
	@echo '  all (default)        libs2mmu.a, s2mmu.pc and, hosted, tools/*'
	@echo '  lib tools tests tests-mt benches'
	@echo '  test                 build and run every test binary in $$(O)'
	@echo '  test-mt              only the concurrency tests (*_mt.c, TESTS_MT)'
	@echo '  install uninstall    PREFIX=$(PREFIX) DESTDIR= LIBDIR= INCLUDEDIR= PKGCONFIGDIR='
	@echo '  clean distclean      objects of $$(O) / all of $$(O) and build/'
	@echo '  print-VAR            print a make variable (print-CC, print-test-bins, ...)'
	@echo 'Whole jobs (own build dirs under build/):'
	@echo '  check                deps, format, tests plain / ASan+UBSan / TSan, freestanding'
	@echo '                       x86_64 aarch64 riscv64, conformance; ends "N passed, N failed"'
	@echo '  bench                bench/*.c, all formats, -O2 -DNDEBUG, in $(BENCH_O)'
	@echo '  run                  build the default configuration and run $(RUN_GOAL)'
	@echo '  conformance          examples/*/run.sh, the riscv64 trace round trip'
	@echo '  conformance-long     the long example boots: x86 EPT Linux under bochs, every arm64 and'
	@echo '                       RISC-V Linux configuration (conformance-long-{arm64,riscv64}-linux)'
	@echo '  nm-check             one-format builds hold no other format (scripts/nm-one-format.sh)'
	@echo '  mutations            the TLB model checker against each change scripts/mutations/ makes'
	@echo '                       to a copy of the tree; table mutation -> caught (MUTATIONS=names)'
	@echo '  tlb-model-long       the TLB model checker, every format, TLB_LONG_SEEDS random seeds'
	@echo '  decode-diff          the decoder against capstone/objdump, DECODE_DIFF_N per part (docs/mmio.md)'
	@echo '  format-check format  clang-format (check / rewrite)'
	@echo '  install-deps         scripts/install-deps.sh'
	@echo 'Variables: O=dir V=1 CC= CROSS_COMPILE= CFLAGS= EXTRA_CFLAGS= SANITIZE= WERROR=0 JOBS='

.PHONY: check bench run run-s2demo conformance format-check format install-deps help
