/* SPDX-License-Identifier: MIT */
/*
 * A guest-progress watchdog for the Linux examples that a loaded machine does
 * not fool. It turns a stuck guest into a FAIL line instead of a run that
 * only the outer timeout ends, without calling a slow guest stuck:
 *
 * - Its clock is not the wall clock: one timer tick of the hypervisor adds
 *   the counter time since the previous tick ended, but at most @cap (about
 *   two tick periods). Time the hypervisor spends in its own steps (a
 *   move, a migration round, the final comparison with the vcpus stopped)
 *   does not count, nor does a stretch in which the emulator's thread got
 *   no CPU at all (it comes back with one late tick).
 * - Its limit follows the guest's own pace: once learning is on (the test
 *   init runs), the longest silence between two progress events is
 *   recorded, and the watchdog fires only after a silence of at least
 *   WD_PACE times that, and at least @base; never later than WD_MAX_BASES
 *   times @base. A machine that slows the guest down slows its progress
 *   events as much, so the limit grows with it.
 *
 * One CPU calls wd_tick() (its timer); any CPU calls wd_progress().
 * Counter units throughout (the caller converts seconds).
 */
#ifndef S2_EXAMPLES_WATCHDOG_H
#define S2_EXAMPLES_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

#define WD_PACE 4
#define WD_MAX_BASES 4

struct wd {
	uint64_t clock;	   /* progress clock (counter units) */
	uint64_t tick_end; /* counter when the last tick's work ended */
	uint64_t last;	   /* clock at the last progress event */
	uint64_t max_gap;  /* longest silence seen while learning */
	uint64_t cap;	   /* most one tick adds to the clock */
	uint32_t learning; /* 1: record silences */
};

static inline void wd_init(struct wd *w, uint64_t now, uint64_t cap)
{
	w->clock = 0;
	w->tick_end = now;
	w->last = 0;
	w->max_gap = 0;
	w->cap = cap;
	w->learning = 0;
}

/* The timer CPU, at the start of a tick: advance the clock. */
static inline void wd_tick(struct wd *w, uint64_t now)
{
	uint64_t d = now - w->tick_end;

	__atomic_store_n(&w->clock, w->clock + (d < w->cap ? d : w->cap), __ATOMIC_RELEASE);
}

/* The timer CPU, when the tick's own work is done. */
static inline void wd_tick_done(struct wd *w, uint64_t now)
{
	w->tick_end = now;
}

/* Any CPU: the guest showed progress. */
static inline void wd_progress(struct wd *w)
{
	uint64_t c = __atomic_load_n(&w->clock, __ATOMIC_ACQUIRE);
	uint64_t prev = __atomic_exchange_n(&w->last, c, __ATOMIC_ACQ_REL);
	uint64_t gap = c > prev ? c - prev : 0, m;

	if (!__atomic_load_n(&w->learning, __ATOMIC_ACQUIRE))
		return;
	m = __atomic_load_n(&w->max_gap, __ATOMIC_RELAXED);
	while (gap > m && !__atomic_compare_exchange_n(&w->max_gap, &m, gap, false,
						       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* From now on silences set the pace (the test init runs). */
static inline void wd_learn(struct wd *w)
{
	__atomic_store_n(&w->learning, 1, __ATOMIC_RELEASE);
}

/* The current limit for a floor of @base. */
static inline uint64_t wd_limit(const struct wd *w, uint64_t base)
{
	uint64_t pace = WD_PACE * __atomic_load_n(&w->max_gap, __ATOMIC_RELAXED);
	uint64_t l = pace > base ? pace : base;

	return l < WD_MAX_BASES * base ? l : WD_MAX_BASES * base;
}

/* The timer CPU: the silence so far, in counter units. */
static inline uint64_t wd_silence(const struct wd *w)
{
	uint64_t last = __atomic_load_n(&w->last, __ATOMIC_ACQUIRE);

	return w->clock > last ? w->clock - last : 0;
}

static inline bool wd_expired(const struct wd *w, uint64_t base)
{
	return wd_silence(w) > wd_limit(w, base);
}

#endif
