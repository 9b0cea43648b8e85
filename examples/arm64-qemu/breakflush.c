// SPDX-License-Identifier: MIT
/*
 * Test hook for `make break` / run.sh --break-flush: the arm64-s2 format
 * instance compiled as if it were not the freestanding aarch64 build, so its
 * flush hooks skip TLBI and only call the environment's hooks (which here
 * only count). Linked before libs2mmu.a, this object provides
 * s2_fmt_ops_arm64_s2 and the archive's instance is never pulled in; every
 * other line of the library is the same. The zap check must then fail.
 */
#include "s2mmu/config.h"
#undef CONFIG_S2_ENV_FREESTANDING
#include "fmt/arm64-s2/fmt.h"
#define FMT_SYM arm64_s2
#include "core/mmu_tmpl.h"
