# SPDX-License-Identifier: MIT
#
# s2mmu build. `make help` lists the targets and variables.
#
# Everything is built into $(O) (default: build/default): .config, the generated
# headers, objects, libs2mmu.a, s2mmu.pc, tools, tests and benchmarks. The
# configuration comes from Kconfig through Debian's kconfig-frontends; a build
# goal with no $(O)/.config starts from configs/defconfig.

# make -s: the single-letter flags are MAKEFLAGS's first word (looked at
# before this file adds long options to it).
silent := $(findstring s,$(firstword $(filter-out --% -% %=%,$(MAKEFLAGS))))
MAKEFLAGS += --no-builtin-rules --no-builtin-variables
.SUFFIXES:
.DELETE_ON_ERROR:
.DEFAULT_GOAL := all

srctree := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
O-given := $(filter command line environment,$(origin O))
ifneq ($(abspath $(CURDIR)),$(srctree))
$(error run make in $(srctree) (or with `make -C $(srctree)`))
endif

# build/ also holds the directories of make check, bench and run.
O ?= build/default
override O := $(patsubst %/,%,$(O))
V ?= 0
VERSION := 0.1.0

include mk/quiet.mk
include mk/goals.mk

ifeq ($(one-by-one),1)
.NOTPARALLEL:
$(goals): one-by-one ; @:
one-by-one:
	$(Q)set -e; for g in $(goals); do $(MAKE) -f $(srctree)/Makefile $$g; done
.PHONY: one-by-one $(goals)
else

# ---------------------------------------------------------------------------
# Configuration (Kconfig)

KCONFIG_CONF ?= kconfig-conf
KCONFIG_MCONF ?= kconfig-mconf
KCONFIG_NCONF ?= kconfig-nconf
HOST_ARCH := $(shell uname -m | sed -e 's/^arm64$$/aarch64/')

config := $(O)/.config
autoconf := $(O)/include/config/auto.conf
autoheader := $(O)/include/generated/autoconf.h
kconfig-fmts := $(O)/include/config/kconfig-fmts
kconfig-files := Kconfig $(wildcard core/Kconfig fmt/*/Kconfig)

# Known formats first, in menu order, then any other fmt/<dir>/Kconfig.
fmt-known := x86-ept arm64-s2 riscv-g x86-npt fake
fmt-all := $(patsubst fmt/%/,%,$(sort $(dir $(wildcard fmt/*/Kconfig))))
fmt-ordered := $(filter $(fmt-all),$(fmt-known)) $(filter-out $(fmt-known),$(fmt-all))

# kconfig runs inside $(O) and finds the sources through $srctree.
conf-env = srctree=$(srctree) S2_KCONFIG_FMTS=$(abspath $(kconfig-fmts)) KCONFIG_CONFIG=.config \
	   KCONFIG_AUTOCONFIG=include/config/auto.conf \
	   KCONFIG_AUTOHEADER=include/generated/autoconf.h.tmp
conf = $(Q)cd $(O) && $(conf-env) $(KCONFIG_CONF)

have-kconfig = $(shell command -v $(KCONFIG_CONF) 2>/dev/null)
check-kconfig = $(if $(have-kconfig),,$(error $(KCONFIG_CONF) not found: run scripts/install-deps.sh build (Debian package kconfig-frontends-nox)))

# The list of format Kconfig files, rewritten only when it changes.
$(kconfig-fmts): FORCE
	@mkdir -p $(O)/include/config $(O)/include/generated
	@printf '%s\n' $(foreach f,$(fmt-ordered),'source "fmt/$(f)/Kconfig"') '' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

define defconfig-recipe
	$(check-kconfig)
	$(call msg,CONF,$(notdir $<))
	$(conf) -s --defconfig=$(srctree)/$< Kconfig
endef
defconfig: configs/defconfig $(kconfig-fmts)
	$(defconfig-recipe)
%_defconfig: configs/%_defconfig $(kconfig-fmts)
	$(defconfig-recipe)

configs/%_defconfig:
	$(error no configs/$*_defconfig; have: $(notdir $(wildcard configs/*defconfig)))

olddefconfig oldconfig alldefconfig allnoconfig allyesconfig randconfig listnewconfig: $(kconfig-fmts)
	$(check-kconfig)
	$(conf) $(if $(filter listnewconfig,$@),,-s) --$@ Kconfig

savedefconfig: $(kconfig-fmts)
	$(check-kconfig)
	$(conf) --savedefconfig=defconfig Kconfig
	@echo "saved $(O)/defconfig (copy it to configs/<name>_defconfig to keep it)"

menuconfig: $(kconfig-fmts)
	$(Q)cd $(O) && $(conf-env) $(KCONFIG_MCONF) Kconfig

nconfig: $(kconfig-fmts)
	$(Q)cd $(O) && $(conf-env) $(KCONFIG_NCONF) Kconfig

# A build with no configuration starts from configs/defconfig.
# (Never overwrites an existing one, not even under make -B.)
$(config): | $(kconfig-fmts)
	$(check-kconfig)
	@if [ ! -f $@ ]; then $(if $(silent),:,echo "no $(config): using configs/defconfig"); \
	cd $(O) && $(conf-env) $(KCONFIG_CONF) -s --defconfig=$(srctree)/configs/defconfig Kconfig; fi

# auto.conf (read below) and autoconf.h follow .config and the Kconfig files.
# olddefconfig first gives new symbols their defaults without asking;
# autoconf.h is replaced only when its content changes, so rewriting .config
# with the same options rebuilds nothing.
$(autoconf): $(config) $(kconfig-files) $(kconfig-fmts)
	$(check-kconfig)
	$(call msg,CONF,$(O)/include/generated/autoconf.h)
	$(conf) -s --olddefconfig Kconfig
	$(conf) -s --silentoldconfig Kconfig </dev/null
	@if cmp -s $(autoheader).tmp $(autoheader); then rm -f $(autoheader).tmp; \
	else mv -f $(autoheader).tmp $(autoheader); fi
	@touch $@

$(autoheader): $(autoconf) ;

ifeq ($(need-config),1)
-include $(autoconf)
endif

# ---------------------------------------------------------------------------
# Toolchain and flags

include mk/flags.mk

# ---------------------------------------------------------------------------
# Sources

# fmt/<dir> is built when CONFIG_S2_FMT_<DIR> is y (upper case, '-' -> '_').
fmt-sym = CONFIG_S2_FMT_$(shell echo '$(1)' | tr 'a-z-' 'A-Z_')
fmt-dirs-all := $(patsubst fmt/%/,%,$(sort $(dir $(wildcard fmt/*/*.c fmt/*/Kconfig))))
fmt-enabled := $(foreach f,$(fmt-dirs-all),$(if $(filter y,$($(call fmt-sym,$(f)))),$(f)))
# The generic suites run over the real formats; the scrambled fake format has
# its own tests. Override GENERIC_FMTS to pick others.
GENERIC_FMTS ?= $(filter-out fake,$(fmt-enabled))

env-dir := env/$(if $(filter y,$(CONFIG_S2_ENV_FREESTANDING)),freestanding,hosted)
lib-srcs := $(sort $(wildcard core/*.c flush/*.c notifier/*.c decode/*.c $(env-dir)/*.c \
	      $(addsuffix /*.c,$(addprefix fmt/,$(fmt-enabled)))))
lib-objs := $(lib-srcs:%.c=$(O)/%.o)
lib := $(O)/libs2mmu.a
pc := $(O)/s2mmu.pc

tool-srcs := $(wildcard tools/*.c)
tool-bins := $(tool-srcs:%.c=$(O)/%)

bench-srcs := $(wildcard bench/*.c)
bench-bins := $(bench-srcs:%.c=$(O)/%)

# Tests: tests/test_*.c is one binary each; tests/ref and tests/lib are linked
# into every test; tests/generic/<s>.c is built once per format in
# GENERIC_FMTS as tests/test_generic_<s>_<fmt>. Concurrency tests (file name
# ending in _mt.c, plus TESTS_MT) are the ones run under ThreadSanitizer.
test-srcs := $(wildcard tests/test_*.c)
test-support-srcs := $(wildcard tests/ref/*.c tests/lib/*.c)
test-support-objs := $(test-support-srcs:%.c=$(O)/%.o)
generic-srcs := $(wildcard tests/generic/*.c)
fmt-us = $(subst -,_,$(1))
generic-name = test_generic_$(basename $(notdir $(1)))_$(call fmt-us,$(2))
test-bins := $(test-srcs:%.c=$(O)/%) \
	$(foreach f,$(GENERIC_FMTS),$(foreach s,$(generic-srcs),$(O)/tests/$(call generic-name,$(s),$(f))))
TESTS_MT ?=
test-mt-bins := $(filter $(O)/tests/test_%_mt $(addprefix $(O)/tests/,$(TESTS_MT)),$(test-bins)) \
	$(foreach f,$(GENERIC_FMTS),$(foreach s,$(filter %_mt.c,$(generic-srcs)),$(O)/tests/$(call generic-name,$(s),$(f))))
test-mt-bins := $(sort $(test-mt-bins))

# The s2mmu tool (tools/s2mmu/) and its tests (tests/cli/).
include mk/tools.mk

# ---------------------------------------------------------------------------
# Build rules

all: lib $(pc) $(if $(hosted),$(tool-bins))
lib: $(lib)
tools: hosted-only $(tool-bins)
tests: hosted-only $(test-bins)
tests-mt: hosted-only $(test-mt-bins)
benches: hosted-only $(bench-bins)

hosted-only:
	$(if $(hosted),,$(error this goal needs a hosted configuration ($(O)/.config is freestanding)))

# Every object depends on the generated header and on the flags it was built
# with, so a new configuration or new flags rebuild it.
flags-file := $(O)/include/config/build-flags
$(flags-file): FORCE | $(autoheader)
	@printf '%s\n' '$(subst ','\'',$(CC) $(ALL_CFLAGS) $(HOSTED_CFLAGS) $(LDFLAGS) $(HOSTED_LIBS))' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

$(O)/%.o: %.c $(autoheader) $(flags-file)
	$(call msg,CC,$*.o)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(obj-cflags) -c -o $@ $<

# -D_GNU_SOURCE and the host's headers only where the host is used.
$(O)/env/hosted/%.o $(O)/tools/%.o $(O)/bench/%.o: obj-cflags = $(HOSTED_CFLAGS)
$(O)/tests/%.o: obj-cflags = $(HOSTED_CFLAGS) $(TEST_CFLAGS)

$(lib): $(lib-objs)
	$(call msg,AR,$(notdir $@))
	@mkdir -p $(@D)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(pc): s2mmu.pc.in $(flags-file) FORCE
	$(call msg,GEN,$(notdir $@))
	@sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	     -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	     -e 's|@LIBS@|$(strip $(if $(hosted),$(HOSTED_LIBS)))|g' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

link-host = $(CC) $(ALL_CFLAGS) $(HOSTED_CFLAGS) $(LDFLAGS) -o $@ $(1) $(lib) $(2) $(HOSTED_LIBS)

$(O)/tools/%: $(O)/tools/%.o $(lib)
	$(call msg,LD,tools/$*)
	$(Q)$(call link-host,$<)

$(O)/bench/%: $(O)/bench/%.o $(lib)
	$(call msg,LD,bench/$*)
	$(Q)$(call link-host,$<)

$(O)/tests/test_%: $(O)/tests/test_%.o $(test-support-objs) $(lib)
	$(call msg,LD,tests/test_$*)
	$(Q)$(call link-host,$< $(test-support-objs),$(TEST_LIBS))

# tests/generic/<s>.c -> tests/generic/<s>.<fmt>.o -> tests/test_generic_<s>_<fmt>
define generic-rules
$(O)/tests/generic/$(2).$(1).o: tests/generic/$(2).c $(autoheader) $(flags-file)
	$$(call msg,CC,tests/generic/$(2).$(1).o)
	@mkdir -p $$(@D)
	$(Q)$$(CC) $$(ALL_CFLAGS) $$(HOSTED_CFLAGS) $$(TEST_CFLAGS) -DTEST_FMT=S2_FMT_$(shell echo '$(1)' | tr 'a-z-' 'A-Z_') \
		-DTEST_FMT_NAME=\"$(1)\" -c -o $$@ $$<

$(O)/tests/$(call generic-name,$(2),$(1)): $(O)/tests/generic/$(2).$(1).o $(test-support-objs) $(lib)
	$$(call msg,LD,tests/$(call generic-name,$(2),$(1)))
	$(Q)$$(call link-host,$$< $(test-support-objs),$(TEST_LIBS))
endef
$(foreach f,$(GENERIC_FMTS),$(foreach s,$(generic-srcs),$(eval $(call generic-rules,$(f),$(basename $(notdir $(s)))))))

# Keep the objects of binaries (they are intermediate otherwise).
.SECONDARY:

all-objs := $(lib-objs) $(test-support-objs) $(tool-srcs:%.c=$(O)/%.o) $(bench-srcs:%.c=$(O)/%.o) \
	$(test-srcs:%.c=$(O)/%.o) \
	$(foreach f,$(GENERIC_FMTS),$(foreach s,$(generic-srcs),$(O)/tests/generic/$(basename $(notdir $(s))).$(f).o))
-include $(wildcard $(all-objs:.o=.d))

# ---------------------------------------------------------------------------
# Running tests in $(O)

run-tests := S2_TEST_LOGDIR=$(O)/test-logs V=$(V) $(srctree)/scripts/run-tests.sh

test: tests
	$(Q)$(run-tests) $(test-bins)

test-mt: tests-mt
	$(Q)$(run-tests) $(test-mt-bins)

# `make print-VAR` prints a variable (scripts use print-test-bins, print-CC,
# print-ARCH_CFLAGS, ...).
print-%:
	@printf '%s\n' '$(subst ','\'',$(strip $($*)))'

# ---------------------------------------------------------------------------
# Install

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

# The installed s2mmu/config.h finds the configuration that built the
# library as s2mmu/generated/autoconf.h (beside itself).
install: lib $(pc)
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(INCLUDEDIR)/s2mmu/generated
	$(Q)install -m 644 $(lib) $(DESTDIR)$(LIBDIR)/
	$(Q)install -m 644 $(install-headers) $(DESTDIR)$(INCLUDEDIR)/s2mmu/
	$(Q)install -m 644 $(autoheader) $(DESTDIR)$(INCLUDEDIR)/s2mmu/generated/autoconf.h
	$(Q)install -m 644 $(pc) $(DESTDIR)$(PKGCONFIGDIR)/s2mmu.pc

uninstall:
	$(call msg,UNINST,$(DESTDIR)$(PREFIX))
	$(Q)rm -f $(DESTDIR)$(LIBDIR)/libs2mmu.a $(DESTDIR)$(PKGCONFIGDIR)/s2mmu.pc
	$(Q)rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/s2mmu/,$(notdir $(wildcard include/s2mmu/*.h)))
	$(Q)rm -f $(DESTDIR)$(INCLUDEDIR)/s2mmu/generated/autoconf.h
	-$(Q)rmdir $(DESTDIR)$(INCLUDEDIR)/s2mmu/generated $(DESTDIR)$(INCLUDEDIR)/s2mmu 2>/dev/null

# Extension point for the example hypervisors (issue 5): examples/*.mk may
# set RUN_GOAL (what `make run` runs) and CONFORMANCE_RUNNERS, and add the
# goals they name.
include $(sort $(wildcard examples/*.mk))

include mk/top.mk
include mk/bench-plot.mk
include mk/fuzz.mk
include mk/mutations.mk
include mk/decode.mk
include mk/tdx.mk
include mk/configs.mk

clean:
	$(call msg,CLEAN,$(O))
	$(Q)rm -rf $(addprefix $(O)/,core flush notifier decode env fmt tools tests bench test-logs \
		libs2mmu.a s2mmu.pc include/config/build-flags)

# Removes $(O) with its configuration, and build/ (every build directory of
# make check, bench and run).
distclean:
	$(call msg,CLEAN,$(O) build)
	$(Q)rm -rf $(O) build

FORCE:

.PHONY: all lib tools tests tests-mt benches hosted-only test test-mt install uninstall clean distclean FORCE defconfig savedefconfig menuconfig nconfig \
	olddefconfig oldconfig alldefconfig allnoconfig allyesconfig randconfig listnewconfig

endif # one-by-one
