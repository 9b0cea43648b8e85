/* SPDX-License-Identifier: MIT */
/*
 * Range operations for embedders that map up front (docs/static.md): map a
 * gpa range to a host range, unmap and write-protect a range, and KVM's
 * KVM_PRE_FAULT_MEMORY (fault a range of a memslot in ahead of the guest).
 */
#ifndef S2MMU_MAP_H
#define S2MMU_MAP_H

#include "s2mmu/sizing.h"
#include "s2mmu/types.h"

struct kvm;
struct kvm_vcpu;

/*
 * Map [@gpa, @gpa + @size) to [@hpa, @hpa + @size) in the root @vcpu runs
 * on, with @prot (S2_PROT_R required, S2_PROT_W, S2_PROT_X, S2_PROT_XU) and
 * @memtype (S2_MT_*, S2_MT_IGNORE_PAT allowed). The range must lie inside
 * one memslot. Each step maps the largest leaf whose aligned block starts at
 * the current gpa, fits the rest of the range and the memslot, is aligned in
 * hpa too, and that the configuration allows (4 KiB leaves only while the
 * memslot logs dirty pages; its leaves then start read-only but
 * MMU-writable, as a read fault's; a write-tracked gfn gets a 4 KiB leaf
 * with neither W nor MMU-writable). Leaves are written under the read side
 * of mmu_lock, one hold per batch of at most CONFIG_S2_YIELD_BATCH leaves,
 * with the tables each batch may link allocated before the lock.
 *
 * Whatever the range held before is zapped first (rule 1: a present leaf
 * is never given another pfn in one step), so the flush this owes is the
 * zap's, and only when something was there. A huge leaf straddling an end
 * of the range is zapped whole, as kvm_zap_gfn_range() does. A range of
 * fewer leaves than a batch is first tried under the read side into empty
 * entries only, replacing nothing (no zap, no flush); from the first entry
 * it finds present, the rest goes through the zap and install below.
 *
 * Call it from the thread that runs @vcpu, or while @vcpu does not run (its
 * memory cache and counters are the vcpu's own). What replaces or may
 * replace something goes through the invalidation protocol of the MMU
 * notifier (rule 4): faults of other vcpus on the range retry until the
 * mapping is complete, so none can install the memslot's page between the
 * zap and the install. (The read-side try needs no invalidation: a fault
 * that installs first stops it, one that comes after finds its leaf.) What
 * the range maps when the call returns is what it was given. (Faults after
 * it find those leaves; one that needs a permission the leaf lacks asks the
 * memslot for the page, and if that is another page, rule 1 refuses the
 * change and the VM is bugged: map only what the memslot's pfn resolution
 * agrees with, or give every permission faults will ask for.) Host-MM
 * invalidations that run meanwhile zap what they find; @hpa is the
 * caller's word and is not checked against them. A batch that meets a
 * memslot update zapping the range (it may yield mmu_lock before it
 * publishes the new set) waits for the update, then checks the memslot
 * again.
 *
 * Returns 0, or -EINVAL (NULL, unaligned or empty range, gpa or hpa past the
 * widths, bad prot or memtype, W on a read-only memslot), -ENOENT (the range
 * is not inside one memslot), -ENOTSUP (a TD), -ENOMEM (a table allocation
 * failed: the leaves of the batches before stay mapped), -EIO (bugged VM).
 */
int kvm_mmu_map_range(struct kvm_vcpu *vcpu, gpa_t gpa, hpa_t hpa, uint64_t size, unsigned prot,
		      unsigned memtype) S2_MUST_CHECK;

/*
 * Unmap [@gpa, @gpa + @size) in every root: kvm_zap_gfn_range() in bytes.
 * Returns the leaves removed (>= 0), -EINVAL (unaligned, empty, past the
 * width), -EIO.
 */
long kvm_mmu_unmap_range(struct kvm *kvm, gpa_t gpa, uint64_t size);

/*
 * Take write permission away over [@gpa, @gpa + @size) in every root (W and
 * MMU-writable cleared, so no write fault restores W without the full fault
 * path), under the write side of mmu_lock, yielding every
 * CONFIG_S2_YIELD_BATCH leaves, with one flush if any leaf lost W. Returns
 * the leaves changed (>= 0), -EINVAL, -EIO.
 */
long kvm_mmu_wrprotect_range(struct kvm *kvm, gpa_t gpa, uint64_t size);

/*
 * Set the permissions of every leaf over [@gpa, @gpa + @size), in every
 * root, to @prot (S2_PROT_R required: removing R is kvm_mmu_unmap_range();
 * of W, X and XU those the leaves keep), under the write side of mmu_lock,
 * yielding every CONFIG_S2_YIELD_BATCH leaves. X and XU are set or cleared
 * as asked (XU where the format has it). W cleared takes MMU-writable with
 * it, as kvm_mmu_wrprotect_range() does. W asked gives MMU-writable back to
 * the leaves whose host mapping is writable (HOST_WRITABLE), and W itself
 * only when no memslot over the range logs dirty pages and no gfn is
 * write-tracked: otherwise the leaf stays read-only but MMU-writable, so
 * the first write faults and is recorded (docs/dirty-logging rules).
 * Leaves that lose a permission are flushed (one flush when the call
 * returns); gaining one owes none. The memory type is not changed here: a
 * new memory type is a new mapping, kvm_mmu_map_range() over the range
 * (zap, flush, install). Returns the leaves changed (>= 0), or -EINVAL
 * (NULL, unaligned, empty or past the width, no R, unknown bits, W over a
 * read-only memslot; nothing changed), -ENOTSUP (a TD), -EIO.
 */
long kvm_mmu_protect_range(struct kvm *kvm, gpa_t gpa, uint64_t size, unsigned prot);

/*
 * KVM_PRE_FAULT_MEMORY: fault [@gpa, @gpa + @size) in for @vcpu as read
 * faults would, page after page, stepping over each leaf the fault maps or
 * finds (so a 2 MiB leaf costs one fault). The tables end as they would
 * after a read fault on each page. Returns the bytes processed (> 0: less
 * than @size when it stopped early at an error after progress), or -EINVAL
 * (unaligned, empty, past the width), -ENOENT (the first page is outside
 * every memslot), -ENOMEM, -EFAULT, -EIO: the first page's error.
 */
long kvm_vcpu_pre_fault_memory(struct kvm_vcpu *vcpu, gpa_t gpa, uint64_t size);

/*
 * Prepare / commit (Hafnium's model, docs/static.md). kvm_mmu_prepare()
 * reserves, for @kvm, every table page that mapping @n regions @r (the
 * regions of s2_sizing_table_pages()) can link, plus the pages the memory
 * caches of @nr_vcpus vcpus hold, allocating them all now: it returns 0, or
 * -ENOMEM with nothing reserved and nothing changed (also -EINVAL as
 * s2_sizing_table_pages(), NULL @kvm, @nr_vcpus above max_vcpus; -EBUSY
 * when a reserve exists; -ENOTSUP for a TD; -EIO).
 *
 * After it, the table pages of kvm_mmu_map_range(), of faults (the vcpu
 * memory-cache top-up) and of huge-leaf splits come from the reserve first,
 * so mapping those regions (the commit) never fails for memory. Table pages
 * freed while the VM lives refill the reserve up to its size: vcpu caches,
 * split stacks, and tables unlinked by a zap, an unmap or a collapse, after
 * their grace period. A table allocation that finds the reserve empty while
 * such tables are still waiting calls the env's rcu_barrier and takes them,
 * so a prepared VM may unmap and map again, fault, split (dirty logging on)
 * and collapse (logging off) on its regions without -ENOMEM. Not covered:
 * memslot updates, which allocate metadata (memslot arrays, dirty bitmaps)
 * and may fail with -ENOMEM before changing anything (so switching dirty
 * logging on or off can be refused; the split and collapse it runs then do
 * not fail); fast zaps (kvm_mmu_zap_all_fast()), whose new roots come from
 * the env; and regions that do not allow 4 KiB leaves but are dirty-logged.
 * The reserve is freed with the VM.
 */
int kvm_mmu_prepare(struct kvm *kvm, const struct s2_sizing_region *r, size_t n,
		    unsigned nr_vcpus) S2_MUST_CHECK;
/* Pages left in @kvm's reserve (0 without one). */
uint64_t kvm_mmu_reserve_pages(const struct kvm *kvm);

#endif
