// SPDX-License-Identifier: MIT
/* Host-MM notifier entry points and the invalidation protocol. */
#include "core/kvm_internal.h"

void s2_notifier_slot_added(struct kvm *kvm, const struct kvm_memory_slot *slot)
{
	(void)kvm;
	(void)slot;
}
