# SPDX-License-Identifier: MIT
#
# Build rules shared by the x86 example hypervisors. The including Makefile
# sets:
#   LIB_DEFCONFIG  configs/<name>_defconfig the library is built with
#   LOAD_ADDR      where the host image is linked and loaded
#   VENDOR_SRCS    its own sources (VMX or SVM half)
#   GUEST_DEFS     -D options of the guest (hypercall instruction)
#   HV_DEFS        -D options of the hypervisor (HV_PREPARED=1: docs/static.md)
# and gets $(B)/hv.bin (flat host image with the guest inside).
#
#   O=dir          build directory (default: build/ beside the Makefile)
#   LIBSRC=dir     s2mmu source tree the library and headers come from
#                  (default: this checkout)
#   BREAK_FLUSH=1  build a hypervisor that ignores KVM_REQ_TLB_FLUSH, into
#                  $(O)/break-flush (the zap check must then fail)

X86C := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
SRCTREE := $(abspath $(X86C)/../..)
EXDIR := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))

LIBSRC ?= $(SRCTREE)
O ?= $(EXDIR)/build
override O := $(abspath $(O))
BREAK_FLUSH ?= 0
B := $(O)$(if $(filter 1,$(BREAK_FLUSH)),/break-flush)
LIBO := $(O)/lib
LIB := $(LIBO)/libs2mmu.a

CC := gcc
OBJCOPY := objcopy
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# -fno-tree-loop-distribute-patterns: gcc must not turn klib's memset loop
# into a call to memset.
BARE := -ffreestanding -nostdlib -fno-builtin -fno-tree-loop-distribute-patterns \
	-fno-stack-protector -fno-pic -fno-pie -fcf-protection=none \
	-fno-asynchronous-unwind-tables -mgeneral-regs-only
HOST_CFLAGS := -std=c11 -O2 -g $(WARN) $(BARE) -m64 -mno-red-zone -ffunction-sections \
	-fdata-sections -I$(LIBSRC)/include -I$(LIBSRC) -I$(LIBO)/include \
	-DBREAK_FLUSH=$(if $(filter 1,$(BREAK_FLUSH)),1,0) $(HV_DEFS)
GUEST_CFLAGS := -std=c11 -O2 $(WARN) $(BARE) -m32 $(GUEST_DEFS)

HV_SRCS := $(X86C)/start.S $(X86C)/hv.c $(X86C)/smp.c $(SRCTREE)/examples/common/klib.c \
	$(X86C)/guest_blob.S $(VENDOR_SRCS)
HV_OBJS := $(foreach s,$(HV_SRCS),$(B)/obj/$(notdir $(basename $(s))).o)

all: $(B)/hv.bin

# The library, freestanding for x86_64, in its own build directory.
$(LIBO)/.config: $(LIBSRC)/configs/$(LIB_DEFCONFIG)
	@mkdir -p $(LIBO)
	$(Q)$(MAKE) --no-print-directory -s -C $(LIBSRC) O=$(LIBO) $(LIB_DEFCONFIG)
$(LIB): $(LIBO)/.config FORCE
	$(Q)$(MAKE) --no-print-directory -s -C $(LIBSRC) O=$(LIBO) lib

# The guest: 32-bit, linked at its gpa, as a flat binary.
$(B)/guest.elf: $(X86C)/guest/entry.S $(X86C)/guest/guest.c $(X86C)/guest/guest.ld \
		$(X86C)/layout.h
	@mkdir -p $(@D)
	$(Q)$(CC) $(GUEST_CFLAGS) -static -Wl,--build-id=none -z noexecstack -T $(X86C)/guest/guest.ld \
		-o $@ $(X86C)/guest/entry.S $(X86C)/guest/guest.c
$(B)/guest.bin: $(B)/guest.elf
	$(Q)$(OBJCOPY) -O binary $< $@

define hv-obj
$(B)/obj/$(notdir $(basename $(1))).o: $(1) $(LIBO)/.config | $(LIB)
	@mkdir -p $$(@D)
	$(Q)$(CC) $$(HOST_CFLAGS) -MMD -MP -c -o $$@ $$<
endef
$(foreach s,$(HV_SRCS),$(eval $(call hv-obj,$(s))))
$(B)/obj/guest_blob.o: $(B)/guest.bin
$(B)/obj/guest_blob.o: HOST_CFLAGS += -DGUEST_BIN='"$(B)/guest.bin"'

$(B)/hv.elf: $(HV_OBJS) $(LIB) $(X86C)/link.ld
	$(Q)$(CC) $(HOST_CFLAGS) -static -Wl,--gc-sections -Wl,--build-id=none -z max-page-size=4096 \
		-z noexecstack -Wl,--no-warn-rwx-segments -Wl,--defsym=LOAD_ADDR=$(LOAD_ADDR) -T $(X86C)/link.ld -o $@ \
		$(HV_OBJS) $(LIB)
$(B)/hv.bin: $(B)/hv.elf
	$(Q)$(OBJCOPY) -O binary $< $@

clean:
	rm -rf $(O)

-include $(HV_OBJS:.o=.d)

FORCE:
.PHONY: all clean FORCE
.DELETE_ON_ERROR:
