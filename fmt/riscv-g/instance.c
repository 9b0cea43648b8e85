#include "fmt/riscv-g/fmt.h"
#define FMT_SYM riscv_g
#include "core/mmu_tmpl.h"
