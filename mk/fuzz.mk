# SPDX-License-Identifier: MIT
#
# The libFuzzer target (tests/fuzz/, docs/testing.md "Fuzzing").
#
#   make fuzz                    build in $(FUZZ_O) with clang, libFuzzer, ASan and
#                                UBSan, then fuzz for FUZZ_SECONDS (default 600) from
#                                the corpus kept in tests/fuzz/corpus/ (new inputs go
#                                to $(FUZZ_O)/corpus, the tree's corpus stays as is)
#   make fuzz FUZZ_RUNS=n        n inputs instead of a time limit
#   make fuzz FUZZ_ARGS=...      more libFuzzer options (-jobs=, -seed=, ...)
#   make fuzz-merge              minimise the found inputs into tests/fuzz/corpus/
#
# make check runs it briefly (scripts/check.sh, FUZZ_SECONDS=20).

FUZZ_O ?= build/fuzz
FUZZ_SECONDS ?= 600
FUZZ_RUNS ?=
FUZZ_ARGS ?=
FUZZ_CC ?= clang
FUZZ_CORPUS := tests/fuzz/corpus
fuzz-srcs := $(wildcard tests/fuzz/*.c)
fuzz-bins := $(fuzz-srcs:%.c=$(O)/%)
fuzz-flags := CC=$(FUZZ_CC) SANITIZE=address,undefined EXTRA_CFLAGS=-fsanitize=fuzzer-no-link

# Build goal inside the fuzz build directory: the targets, linked with
# libFuzzer's main.
fuzz-targets: hosted-only $(fuzz-bins)

$(O)/tests/fuzz/%: $(O)/tests/fuzz/%.o $(test-support-objs) $(lib)
	$(call msg,LD,tests/fuzz/$*)
	$(Q)$(call link-host,$< $(test-support-objs),$(TEST_LIBS)) -fsanitize=fuzzer

fuzz-build:
	$(Q)MAKE="$(MAKE)" $(srctree)/scripts/configure.sh $(FUZZ_O) allformats_defconfig
	+$(Q)$(sub-make) O=$(FUZZ_O) $(fuzz-flags) fuzz-targets

fuzz: fuzz-build
	$(Q)mkdir -p $(FUZZ_O)/corpus $(FUZZ_O)/artifacts
	$(Q)ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1} \
		UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		$(FUZZ_O)/tests/fuzz/fuzz_api -artifact_prefix=$(FUZZ_O)/artifacts/ \
		$(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS)) \
		-max_len=4096 -print_final_stats=1 $(FUZZ_ARGS) $(FUZZ_O)/corpus $(FUZZ_CORPUS)

fuzz-merge: fuzz-build
	$(Q)$(FUZZ_O)/tests/fuzz/fuzz_api -merge=1 -max_len=4096 $(FUZZ_CORPUS) $(FUZZ_O)/corpus

.PHONY: fuzz fuzz-build fuzz-merge fuzz-targets
-include $(fuzz-srcs:%.c=$(O)/%.d)
