#include "fmt/x86-npt/fmt.h"
#define FMT_SYM x86_npt
#include "core/mmu_tmpl.h"
