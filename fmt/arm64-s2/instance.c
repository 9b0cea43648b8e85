#include "fmt/arm64-s2/fmt.h"
#define FMT_SYM arm64_s2
#include "core/mmu_tmpl.h"
