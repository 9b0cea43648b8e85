# SPDX-License-Identifier: MIT
#
# `make run` (the README's main job) boots the example hypervisor of the
# configured architecture under its emulator: the first format the
# configuration builds picks it, so the default configuration (x86 EPT) runs
# the bochs VMX example. `make run RUN_GOAL=run-s2demo` runs the hosted
# demonstration instead.
RUN_GOAL := run-example

run-example-dir = $(firstword \
	$(if $(CONFIG_S2_FMT_X86_EPT),examples/x86-ept-bochs) \
	$(if $(CONFIG_S2_FMT_X86_NPT),examples/x86-npt-qemu) \
	$(if $(CONFIG_S2_FMT_ARM64_S2),examples/arm64-qemu) \
	$(if $(CONFIG_S2_FMT_RISCV_G),examples/riscv64-qemu))

run-example:
	$(if $(run-example-dir),,$(error make run: the configuration in $(O) builds no format with an example))
	$(Q)$(srctree)/scripts/install-deps.sh emu
	@echo "== make run: $(run-example-dir) (the configured format's example hypervisor)"
	$(Q)bash $(run-example-dir)/run.sh

# make conformance (part of make check): every example, plus the proof that
# the zap check fails when the flush is compiled out.
CONFORMANCE_RUNNERS := $(sort $(wildcard examples/*/run.sh)) examples/break-flush.sh
