// SPDX-License-Identifier: MIT
/*
 * Test hook for `make break` / run.sh --break-flush: the riscv-g format
 * instance compiled as if it were not the freestanding riscv64 build, so its
 * flush hooks skip HFENCE.GVMA and only call the environment's hooks (which
 * here only count). Linked before libs2mmu.a, this object provides
 * s2_fmt_ops_riscv_g and the archive's instance is never pulled in; every
 * other line of the library is the same. The zap check must then fail.
 */
#include "s2mmu/config.h"
#undef CONFIG_S2_ENV_FREESTANDING
#include "fmt/riscv-g/fmt.h"
#if RVG_HAVE_HFENCE
#error "the break-flush instance must not emit HFENCE.GVMA"
#endif
#define FMT_SYM riscv_g
#include "core/mmu_tmpl.h"
