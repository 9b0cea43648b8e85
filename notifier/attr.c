// SPDX-License-Identifier: MIT
/* Memory attributes (private/shared) per gfn range. */
#include "core/kvm_internal.h"

void s2_notifier_destroy(struct kvm *kvm)
{
	(void)kvm;
}
