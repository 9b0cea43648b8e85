# SPDX-License-Identifier: MIT
#
# decode/ (the instruction decoder, built into libs2mmu.a through lib-srcs)
# and its differential tests: tests/test_decode_<arch> link capstone
# (x86-64, arm64) and tests/decode/show.c; the RISC-V one runs
# riscv64-linux-gnu-objdump. make check runs them with a bounded count;
# `make decode-diff` runs them with DECODE_DIFF_N random encodings per
# architecture and as many generated ones.

capstone-libs := $(shell pkg-config --libs capstone 2>/dev/null || echo -lcapstone)
decode-show-obj := $(O)/tests/decode/show.o
decode-test-bins := $(filter $(O)/tests/test_decode_%,$(test-bins))

# More specific than $(O)/tests/test_%, so it wins for these binaries.
$(O)/tests/test_decode_%: $(O)/tests/test_decode_%.o $(decode-show-obj) $(test-support-objs) $(lib)
	$(call msg,LD,tests/test_decode_$*)
	$(Q)$(call link-host,$< $(decode-show-obj) $(test-support-objs),$(TEST_LIBS) $(capstone-libs))

DECODE_DIFF_N ?= 2000000
decode-diff: hosted-only $(decode-test-bins)
	$(Q)set -e; for b in $(decode-test-bins); do echo "== $$b (S2_DECODE_N=$(DECODE_DIFF_N))"; \
		S2_DECODE_N=$(DECODE_DIFF_N) $$b; done

-include $(decode-show-obj:.o=.d)

.PHONY: decode-diff
