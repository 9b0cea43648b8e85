# SPDX-License-Identifier: MIT
#
# The TLB model checker's longer jobs (tests/generic/tlb_model_mt.c,
# docs/testing.md "The TLB model checker"). Neither is part of make check.
#
#   make mutations [MUTATIONS="name ..."]
#       copy the working tree to $(MUT_DIR), run the checker on it unchanged,
#       then apply each change of scripts/mutations/*.sh in turn and show that
#       the checker fails on it; prints mutation -> caught / NOT caught
#       (scripts/mutations.sh; MUT_SEEDS, MUT_SECONDS, MUT_OPS)
#   make tlb-model-long [TLB_LONG_SEEDS=n] [TLB_LONG_SANITIZE=thread]
#       every configuration of every format with n random seeds and longer
#       runs, in $(TLB_LONG_O) (scripts/tlb-model-long.sh; TLB_LONG_OPS,
#       TLB_LONG_SECONDS)

MUT_DIR ?= build/mutations
MUTATIONS ?=
TLB_LONG_O ?= build/tlb-long

mutations:
	$(Q)$(srctree)/scripts/install-deps.sh build
	$(Q)MAKE="$(MAKE)" JOBS=$(JOBS) MUT_DIR=$(MUT_DIR) $(srctree)/scripts/mutations.sh $(MUTATIONS)

tlb-model-long:
	$(Q)$(srctree)/scripts/install-deps.sh build
	$(Q)MAKE="$(MAKE)" JOBS=$(JOBS) TLB_LONG_O=$(TLB_LONG_O) $(srctree)/scripts/tlb-model-long.sh

.PHONY: mutations tlb-model-long
