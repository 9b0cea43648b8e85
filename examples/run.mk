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

# `make run GUEST=linux`: Debian's unmodified Linux under the configured
# architecture's Linux example, the console left interactive (x86: the NPT
# example under QEMU; the first of arm64, riscv64 and x86 NPT the
# configuration builds is booted).
run-linux-dir = $(firstword \
	$(if $(CONFIG_S2_FMT_ARM64_S2),examples/arm64-linux) \
	$(if $(CONFIG_S2_FMT_RISCV_G),examples/riscv64-linux) \
	$(if $(CONFIG_S2_FMT_X86_NPT),examples/x86-linux-npt))

ifeq ($(GUEST),linux)
run-example:
	$(if $(run-linux-dir),,$(error make run GUEST=linux: the configuration in $(O) builds none of arm64, riscv64 and x86 NPT (try: make O=build/run-arm64 arm64_defconfig && make run O=build/run-arm64 GUEST=linux)))
	$(Q)$(srctree)/scripts/install-deps.sh emu
	@echo "== make run GUEST=linux: $(run-linux-dir) (Debian's kernel, interactive console)"
	$(Q)bash $(run-linux-dir)/run.sh --interactive
else
run-example:
	$(if $(run-example-dir),,$(error make run: the configuration in $(O) builds no format with an example))
	$(Q)$(srctree)/scripts/install-deps.sh emu
	@echo "== make run: $(run-example-dir) (the configured format's example hypervisor)"
	$(Q)bash $(run-example-dir)/run.sh
endif

# make conformance (part of make check): every example, plus the proof that
# the zap check fails when the flush is compiled out.
CONFORMANCE_RUNNERS := $(sort $(wildcard examples/*/run.sh)) examples/break-flush.sh \
	examples/riscv64-qemu/trace.sh
