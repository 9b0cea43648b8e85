#include "fmt/x86-ept/fmt.h"
#define FMT_SYM x86_ept
#include "core/mmu_tmpl.h"
