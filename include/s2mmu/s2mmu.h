/* SPDX-License-Identifier: MIT */
/* Convenience header: every public concern of s2mmu. */
#ifndef S2MMU_S2MMU_H
#define S2MMU_S2MMU_H
#include "s2mmu/types.h"
#include "s2mmu/errno.h"
#include "s2mmu/prot.h"
#include "s2mmu/env.h"
#include "s2mmu/kvm.h"
#include "s2mmu/memslot.h"
#include "s2mmu/vcpu.h"
#include "s2mmu/mmu.h"
#include "s2mmu/map.h"
#include "s2mmu/flush.h"
#include "s2mmu/notifier.h"
#include "s2mmu/dirty.h"
#include "s2mmu/x86-cr.h"
#endif
