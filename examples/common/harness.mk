# SPDX-License-Identifier: MIT
#
# harness.c (harness.h) in the hypervisor images of arm64-qemu and
# riscv64-qemu, built with the including example's HYP_CFLAGS (and so its
# layout.h); its trace image's copy against the trace library's headers.
# The including Makefile sets srctree, OUT, LIB, TLIB, TLIBO and HYP_CFLAGS.

$(OUT)/hyp/harness.o: $(srctree)/examples/common/harness.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(HYP_CFLAGS) -c -o $@ $<
$(OUT)/hyp/harness-trace.o: $(srctree)/examples/common/harness.c $(TLIB)
	@mkdir -p $(@D)
	$(CC) $(HYP_CFLAGS) -I$(TLIBO)/include -c -o $@ $<
