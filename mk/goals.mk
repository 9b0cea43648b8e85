# SPDX-License-Identifier: MIT
#
# Which goals need a configuration. Configuration goals write $(O)/.config;
# orchestration goals (check, bench, run, ...) run sub-makes in their own build
# directories; every other goal is a build goal and reads $(O)/.config
# (creating it from configs/defconfig when it is missing).
#
# A configuration goal given together with other goals (`make defconfig all`)
# makes the goals run one after the other, each in a fresh make, so the build
# reads the configuration just written.

config-goals := defconfig %_defconfig savedefconfig menuconfig nconfig olddefconfig oldconfig \
	alldefconfig allnoconfig allyesconfig randconfig listnewconfig
noconfig-goals := help clean distclean check bench bench-plot run conformance format format-check install-deps \
	fuzz fuzz-build fuzz-merge mutations tlb-model-long conformance-long conformance-long-%

goals := $(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))
build-goals := $(filter-out $(config-goals) $(noconfig-goals),$(goals))
need-config := $(if $(build-goals),1)
one-by-one :=
ifneq ($(filter $(config-goals),$(goals)),)
ifneq ($(words $(goals)),1)
one-by-one := 1
need-config :=
endif
endif
