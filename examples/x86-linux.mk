# SPDX-License-Identifier: MIT
#
# x86 Linux guests (issue 18). examples/x86-linux-npt/run.sh is a conformance
# runner by its name (run.mk's wildcard); its two sabotaged builds are one
# more step of make conformance. The EPT twin under bochs takes many minutes,
# so it has its own goal, outside make check:
#
#   make conformance-long   examples/x86-linux-ept/long.sh (bochs, VMX + EPT; six
#                           boots: the migration's dirty log by write
#                           protection, EPT A/D and PML, then the break-flush,
#                           drop-dirty and drop-pml builds, which must fail
#                           their check)
CONFORMANCE_RUNNERS += examples/x86-linux-npt/sabotaged.sh

conformance-long:
	$(Q)$(srctree)/scripts/install-deps.sh emu
	$(Q)bash examples/x86-linux-ept/long.sh

.PHONY: conformance-long
