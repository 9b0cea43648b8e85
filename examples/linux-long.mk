# SPDX-License-Identifier: MIT
#
# arm64 and RISC-V Linux guests (issue 13). make conformance runs their
# run.sh short forms (one passing boot per architecture and the two
# sabotaged images each); every stage-2 configuration and dirty-logging
# mode is a boot of 10-60 s of CPU, so the whole matrices are goals of
# make conformance-long (docs/testing.md):
#
#   make conformance-long-arm64-linux    examples/arm64-linux/run.sh --long
#   make conformance-long-riscv64-linux  examples/riscv64-linux/run.sh --long
conformance-long: conformance-long-arm64-linux conformance-long-riscv64-linux

conformance-long-arm64-linux conformance-long-riscv64-linux: conformance-long-%:
	$(Q)$(srctree)/scripts/install-deps.sh emu
	$(Q)bash examples/$*/run.sh --long

.PHONY: conformance-long conformance-long-arm64-linux conformance-long-riscv64-linux
