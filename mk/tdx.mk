# SPDX-License-Identifier: MIT
#
# TDX (issue 12, docs/tdx.md): tests/tdx/test_*.c are one binary each, linked
# with the software model of the TDX module (tests/tdx/model.c) and the usual
# test support; built and run with the other tests when CONFIG_S2_TDX is set
# (the EPT format). `make tdx-test` runs only them.

ifeq ($(CONFIG_S2_TDX),y)
ifneq ($(hosted),)
tdx-test-srcs := $(wildcard tests/tdx/test_*.c)
tdx-support-objs := $(patsubst %.c,$(O)/%.o,$(filter-out $(tdx-test-srcs),$(wildcard tests/tdx/*.c)))
tdx-test-bins := $(tdx-test-srcs:%.c=$(O)/%)
test-bins += $(tdx-test-bins)

$(O)/tests/tdx/test_%: $(O)/tests/tdx/test_%.o $(tdx-support-objs) $(test-support-objs) $(lib)
	$(call msg,LD,tests/tdx/test_$*)
	$(Q)$(call link-host,$< $(tdx-support-objs) $(test-support-objs),$(TEST_LIBS))

tests: $(tdx-test-bins)
# test_*_mt: the concurrency tests, also run under ThreadSanitizer (make check).
tdx-mt-bins := $(filter %_mt,$(tdx-test-bins))
test-mt-bins += $(tdx-mt-bins)
tests-mt: $(tdx-mt-bins)
tdx-test: hosted-only $(tdx-test-bins)
	$(Q)$(run-tests) $(tdx-test-bins)

-include $(tdx-test-bins:=.d) $(tdx-support-objs:.o=.d)
endif
endif

.PHONY: tdx-test

# arm64- and RISC-V-only builds carry no TDX code (nm over their libraries).
tdx-nm-check:
	$(Q)$(MAKE) --no-print-directory O=$(O)-nm-arm64 arm64_defconfig >/dev/null
	$(Q)$(MAKE) --no-print-directory O=$(O)-nm-arm64 -j2 lib >/dev/null
	$(Q)$(MAKE) --no-print-directory O=$(O)-nm-riscv64 riscv64_defconfig >/dev/null
	$(Q)$(MAKE) --no-print-directory O=$(O)-nm-riscv64 -j2 lib >/dev/null
	$(Q)$(srctree)/tests/tdx/nm_check.sh $(O)-nm-arm64 $(O)-nm-riscv64

.PHONY: tdx-nm-check
