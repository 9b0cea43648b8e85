# SPDX-License-Identifier: MIT
# Quiet output: "  CC      core/foo.o" unless V=1 prints the full commands;
# make -s prints neither (so `make -s print-VAR` prints only the value).
ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = $(if $(silent),,@printf '  %-7s %s\n' '$(1)' '$(2)')
MAKEFLAGS += --no-print-directory
endif
