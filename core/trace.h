/* SPDX-License-Identifier: MIT */
/*
 * The call trace (CONFIG_S2_TRACE, docs/tools.md "The trace format"): each
 * public call that changes a VM ends by sending one line of `s2mmu replay`'s
 * trace format, "verb key=value ... => RESULT", to the env's log hook at
 * S2_LOG_TRACE, when the env asks for it (struct s2_env.trace). Without the
 * option S2_TRACE() expands to nothing: no code, no argument evaluated.
 *
 *	S2_TRACE(kvm, "zap", r, S2_TA_HEX("gfn", start), S2_TA_HEX("end", end));
 *	S2_TRACE0(kvm, "zap_all", r);
 */
#ifndef S2MMU_CORE_TRACE_H
#define S2MMU_CORE_TRACE_H

#include "s2mmu/config.h"
#include "s2mmu/env.h"

enum s2_trace_kind {
	S2_TK_HEX,   /* 0x... */
	S2_TK_DEC,   /* decimal */
	S2_TK_STR,   /* a string (s) */
	S2_TK_ACC,   /* S2_ACC_* as rwxu letters */
	S2_TK_FMTF,  /* S2_FMTF_* names */
	S2_TK_SLOTF, /* KVM_MEM_* names */
	S2_TK_CAPS,  /* KVM_DIRTY_LOG_* names */
	S2_TK_PROT,  /* S2_PROT_R/W/X/XU as rwxu letters */
	S2_TK_ATTR,  /* memory attributes: private or 0 */
	S2_TK_WORDS, /* v 64-bit words at w, comma-separated hex */
};

struct s2_trace_arg {
	const char *key;
	enum s2_trace_kind kind;
	uint64_t v;
	const char *s;
	const uint64_t *w;
};

/* clang-format off */
#define S2_TA_HEX(k, x) { (k), S2_TK_HEX, (uint64_t)(x), 0, 0 }
#define S2_TA_DEC(k, x) { (k), S2_TK_DEC, (uint64_t)(x), 0, 0 }
#define S2_TA_STR(k, x) { (k), S2_TK_STR, 0, (x), 0 }
#define S2_TA_ACC(k, x) { (k), S2_TK_ACC, (uint64_t)(x), 0, 0 }
#define S2_TA_FMTF(k, x) { (k), S2_TK_FMTF, (uint64_t)(x), 0, 0 }
#define S2_TA_SLOTF(k, x) { (k), S2_TK_SLOTF, (uint64_t)(x), 0, 0 }
#define S2_TA_CAPS(k, x) { (k), S2_TK_CAPS, (uint64_t)(x), 0, 0 }
#define S2_TA_PROT(k, x) { (k), S2_TK_PROT, (uint64_t)(x), 0, 0 }
#define S2_TA_ATTR(k, x) { (k), S2_TK_ATTR, (uint64_t)(x), 0, 0 }
#define S2_TA_WORDS(k, p, n) { (k), S2_TK_WORDS, (uint64_t)(n), 0, (p) }
/* clang-format on */

/* A line without "=> RESULT" (one of several lines a call is split into). */
#define S2_TRACE_NORET (-__LONG_MAX__ - 1)

#if S2_ENABLED(CONFIG_S2_TRACE)
/* Format and send one line through @env's log hook (when env->trace). */
void s2_trace_emit(const struct s2_env *env, const char *verb, const struct s2_trace_arg *a,
		   unsigned n, long ret);

#define S2_TRACE_ENV(env_, verb, ret, ...)                                            \
	do {                                                                          \
		const struct s2_env *te_ = (env_);                                    \
		if (te_ && te_->trace) {                                              \
			const struct s2_trace_arg ta_[] = { __VA_ARGS__ };            \
			s2_trace_emit(te_, (verb), ta_, sizeof(ta_) / sizeof(ta_[0]), \
				      (long)(ret));                                   \
		}                                                                     \
	} while (0)
#define S2_TRACE(kvm_, verb, ret, ...) \
	S2_TRACE_ENV((kvm_) ? (kvm_)->env : 0, verb, ret, __VA_ARGS__)
#define S2_TRACE0(kvm_, verb, ret)                                     \
	do {                                                           \
		const struct s2_env *te_ = (kvm_) ? (kvm_)->env : 0;   \
		if (te_ && te_->trace)                                 \
			s2_trace_emit(te_, (verb), 0, 0, (long)(ret)); \
	} while (0)
#else
#define S2_TRACE_ENV(env_, verb, ret, ...) \
	do {                               \
	} while (0)
#define S2_TRACE(kvm_, verb, ret, ...) \
	do {                           \
	} while (0)
#define S2_TRACE0(kvm_, verb, ret) \
	do {                       \
	} while (0)
#endif

#endif
