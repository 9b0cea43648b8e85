// SPDX-License-Identifier: MIT
/* The formats this build has: one ops table each, chosen by Kconfig. */
#include "core/kvm_internal.h"

extern const struct s2_fmt_ops s2_fmt_ops_x86_ept;
extern const struct s2_fmt_ops s2_fmt_ops_arm64_s2;
extern const struct s2_fmt_ops s2_fmt_ops_riscv_g;
extern const struct s2_fmt_ops s2_fmt_ops_x86_npt;
extern const struct s2_fmt_ops s2_fmt_ops_fake;

static const struct s2_fmt_ops *const s2_formats[] = {
#ifdef CONFIG_S2_FMT_X86_EPT
	&s2_fmt_ops_x86_ept,
#endif
#ifdef CONFIG_S2_FMT_ARM64_S2
	&s2_fmt_ops_arm64_s2,
#endif
#ifdef CONFIG_S2_FMT_RISCV_G
	&s2_fmt_ops_riscv_g,
#endif
#ifdef CONFIG_S2_FMT_X86_NPT
	&s2_fmt_ops_x86_npt,
#endif
#ifdef CONFIG_S2_FMT_FAKE
	&s2_fmt_ops_fake,
#endif
	NULL,
};

const struct s2_fmt_ops *s2_fmt_lookup(enum s2_fmt_id id)
{
	for (unsigned i = 0; s2_formats[i]; i++)
		if (s2_formats[i]->id == id)
			return s2_formats[i];
	return NULL;
}

bool s2_fmt_supported(enum s2_fmt_id fmt)
{
	return s2_fmt_lookup(fmt) != NULL;
}

const char *s2_fmt_name(enum s2_fmt_id fmt)
{
	/* Only the formats built in: a one-format library holds no other
	 * format's name (scripts/nm-one-format.sh). */
	static const char *const names[] = {
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
		[S2_FMT_X86_EPT] = "x86-ept",
#endif
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
		[S2_FMT_ARM64_S2] = "arm64-s2",
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
		[S2_FMT_RISCV_G] = "riscv-g",
#endif
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
		[S2_FMT_X86_NPT] = "x86-npt",
#endif
#if S2_ENABLED(CONFIG_S2_FMT_FAKE)
		[S2_FMT_FAKE] = "fake",
#endif
	};

	if ((unsigned)fmt >= sizeof(names) / sizeof(names[0]))
		return NULL;
	return names[fmt];
}
