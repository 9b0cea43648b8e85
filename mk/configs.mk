# SPDX-License-Identifier: MIT
#
# make syntax-check: every hosted C source that $(O)'s configuration builds
# beside the library (tests with tests/generic once per GENERIC_FMTS, tests/lib,
# tests/ref, tools, benches) compiled with -fsyntax-only and the build's
# warnings (fatal): the compiler front end's errors and warnings, such as a
# variable used only under #if CONFIG_S2_FMT_..., at a fraction of a build's
# CPU (no code generated, nothing linked). make check runs it on the one-format
# configurations (scripts/check.sh), whose sources otherwise only allformats
# compiles. The library itself is built one-format by the freestanding steps.

syntax-cflags = $(filter-out -MMD -MP,$(ALL_CFLAGS)) $(HOSTED_CFLAGS) -fsyntax-only
syntax-srcs := $(test-srcs) $(test-support-srcs) $(tool-srcs) $(bench-srcs) \
	$(s2mmu-tool-srcs) $(wildcard tests/decode/*.c tests/cli/*.c) \
	$(if $(filter y,$(CONFIG_S2_TDX)),$(wildcard tests/tdx/*.c))
syntax-oks := $(syntax-srcs:%.c=$(O)/syntax/%.ok) \
	$(foreach f,$(GENERIC_FMTS),$(foreach s,$(generic-srcs),$(O)/syntax/tests/generic/$(basename $(notdir $(s))).$(f).ok))

syntax-check: hosted-only $(syntax-oks)

$(O)/syntax/tests/%.ok: syntax-extra = $(TEST_CFLAGS)
$(O)/syntax/tools/s2mmu/%.ok: syntax-extra = -DS2MMU_VERSION=\"$(VERSION)\"

$(O)/syntax/%.ok: %.c $(autoheader) FORCE
	$(call msg,SYNTAX,$*.c)
	$(Q)$(CC) $(syntax-cflags) $(syntax-extra) $<

define syntax-generic
$(O)/syntax/tests/generic/$(2).$(1).ok: tests/generic/$(2).c $(autoheader) FORCE
	$$(call msg,SYNTAX,tests/generic/$(2).c ($(1)))
	$(Q)$$(CC) $$(syntax-cflags) $$(TEST_CFLAGS) -DTEST_FMT=S2_FMT_$(shell echo '$(1)' | tr 'a-z-' 'A-Z_') \
		-DTEST_FMT_NAME=\"$(1)\" $$<
endef
$(foreach f,$(GENERIC_FMTS),$(foreach s,$(generic-srcs),$(eval $(call syntax-generic,$(f),$(basename $(notdir $(s)))))))

.PHONY: syntax-check
