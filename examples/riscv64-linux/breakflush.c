// SPDX-License-Identifier: MIT
/*
 * For `make break`: the riscv-g format instance compiled as if the build
 * were not freestanding riscv64, so its flushes run no HFENCE.GVMA and only
 * call the environment's hooks (which, with BREAK_FLUSH, send nothing).
 * Linked before libs2mmu.a, it provides s2_fmt_ops_riscv_g and the
 * archive's instance is never pulled in. The moves must then fail.
 */
#include "s2mmu/config.h"
#undef CONFIG_S2_ENV_FREESTANDING
#include "fmt/riscv-g/fmt.h"
#if RVG_HAVE_HFENCE
#error "the break-flush instance must not emit HFENCE.GVMA"
#endif
#define FMT_SYM riscv_g
#include "core/mmu_tmpl.h"
