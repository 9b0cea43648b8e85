# SPDX-License-Identifier: MIT
#
# Toolchain and flags, from the configuration read into CONFIG_* variables.
#
#   CC, AR          compiler and archiver (a freestanding build for another
#                   architecture uses $(CROSS_COMPILE)gcc unless CC is given)
#   CROSS_COMPILE   prefix for freestanding builds; default per architecture:
#                   aarch64-linux-gnu-, riscv64-linux-gnu-, x86_64-linux-gnu-
#                   (empty when the target is the host)
#   CFLAGS          optimisation/debug (default -O2 -g)
#   EXTRA_CFLAGS    added after everything (e.g. -DNDEBUG)
#   SANITIZE        hosted only: address,undefined or thread
#   WERROR=0        warnings are not errors

hosted := $(if $(filter y,$(CONFIG_S2_ENV_FREESTANDING)),,y)

s2-arch := $(if $(filter y,$(CONFIG_S2_ARCH_AARCH64)),aarch64,$(if $(filter y,$(CONFIG_S2_ARCH_RISCV64)),riscv64,$(if $(filter y,$(CONFIG_S2_ARCH_X86_64)),x86_64,$(HOST_ARCH))))

ifeq ($(hosted),)
CROSS_COMPILE ?= $(if $(filter $(s2-arch),$(HOST_ARCH)),,$(s2-arch)-linux-gnu-)
endif
ifneq ($(filter default undefined,$(origin CC)),)
CC := $(CROSS_COMPILE)gcc
endif
ifneq ($(filter default undefined,$(origin AR)),)
AR := $(CROSS_COMPILE)ar
endif
NM ?= $(CROSS_COMPILE)nm

CFLAGS ?= -O2 -g
LDFLAGS ?=
EXTRA_CFLAGS ?=
WERROR ?= 1
SANITIZE ?=

WARN_CFLAGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
	$(if $(filter 1,$(WERROR)),-Werror)

# Freestanding: no libc headers at all (only the compiler's own: stdint.h,
# stddef.h, stdbool.h, stdatomic.h, limits.h, ...), no stack protector, no PIC,
# no FP/SIMD registers (hypervisor code does not save them), and the code
# models bare-metal hypervisors link with. _LIBC_LIMITS_H_ keeps gcc's
# limits.h from looking for a libc one.
fs-arch-cflags-x86_64 := -mno-red-zone -mgeneral-regs-only
fs-arch-cflags-aarch64 := -mgeneral-regs-only -mstrict-align -mno-outline-atomics
fs-arch-cflags-riscv64 := -march=rv64imac_zicsr_zifencei -mabi=lp64 -mcmodel=medany
ifeq ($(hosted),)
ARCH_CFLAGS := -ffreestanding -nostdlib -nostdinc \
	-isystem $(shell $(CC) -print-file-name=include 2>/dev/null) -D_LIBC_LIMITS_H_ \
	-fno-stack-protector -fno-pie -fno-pic -ffunction-sections -fdata-sections \
	$(fs-arch-cflags-$(s2-arch))
ifneq ($(SANITIZE),)
$(error SANITIZE needs a hosted configuration)
endif
else
ARCH_CFLAGS :=
endif

comma := ,
SAN_CFLAGS := $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
	$(if $(filter address undefined,$(subst $(comma), ,$(SANITIZE))),-fno-sanitize-recover=all))

ALL_CFLAGS = -std=c11 $(CFLAGS) $(WARN_CFLAGS) -fno-strict-aliasing -MMD -MP \
	-Iinclude -I. -I$(O)/include $(ARCH_CFLAGS) $(SAN_CFLAGS) $(EXTRA_CFLAGS)
# Only env/hosted, tests, tools and bench see the host's libc extensions.
HOSTED_CFLAGS := -D_GNU_SOURCE
HOSTED_LIBS := -lurcu-bp -lurcu-common -lpthread
# Every cmocka test function takes a `void **state` most never use.
TEST_CFLAGS := -Wno-unused-parameter
TEST_LIBS := -lcmocka
