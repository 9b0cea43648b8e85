#include "fmt/fake/fmt.h"
#define FMT_SYM fake
#include "core/mmu_tmpl.h"
