/* SPDX-License-Identifier: MIT */
/*
 * The build configuration: the CONFIG_S2_* macros Kconfig generated for the
 * build (generated/autoconf.h: $(O)/include/generated/ in the build tree,
 * s2mmu/generated/ beside this header once installed), helpers to test them
 * and defaults for the numeric options.
 *
 * S2_ENABLED(CONFIG_S2_FOO) is 1 when a bool option is set and 0 otherwise,
 * as an integer constant expression, so it works in #if, in if () and in
 * _Static_assert, and code behind a disabled option is still compiled (and
 * type-checked) before the optimiser drops it.
 */
#ifndef S2MMU_CONFIG_H
#define S2MMU_CONFIG_H

#include "generated/autoconf.h"

/*
 * Kconfig defines a set bool as 1 and leaves an unset one undefined. Pasting
 * the macro's value onto S2__ARG_PLACEHOLDER_ gives "0," only for 1, which
 * shifts the 1 into the second argument position; anything else leaves 0
 * there.
 */
#define S2__ARG_PLACEHOLDER_1 0,
#define S2__TAKE_SECOND(ignored, val, ...) val
#define S2__IS_DEFINED(x) S2__IS_DEFINED_(x)
#define S2__IS_DEFINED_(val) S2__IS_DEFINED__(S2__ARG_PLACEHOLDER_##val)
#define S2__IS_DEFINED__(arg1_or_junk) S2__TAKE_SECOND(arg1_or_junk 1, 0, 0)

#define S2_ENABLED(option) S2__IS_DEFINED(option)

/* Numeric options a hand-written autoconf.h may leave out. */
#ifndef CONFIG_S2_MAX_LEAF_LEVEL
#define CONFIG_S2_MAX_LEAF_LEVEL 3
#endif
#ifndef CONFIG_S2_MAX_MEMSLOTS
#define CONFIG_S2_MAX_MEMSLOTS 512
#endif

#if CONFIG_S2_MAX_LEAF_LEVEL < 1 || CONFIG_S2_MAX_LEAF_LEVEL > 3
#error "CONFIG_S2_MAX_LEAF_LEVEL must be 1 (4 KiB), 2 (2 MiB) or 3 (1 GiB)"
#endif
#if S2_ENABLED(CONFIG_S2_ENV_HOSTED) && S2_ENABLED(CONFIG_S2_ENV_FREESTANDING)
#error "CONFIG_S2_ENV_HOSTED and CONFIG_S2_ENV_FREESTANDING are exclusive"
#endif

#endif
