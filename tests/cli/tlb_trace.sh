#!/usr/bin/env bash
# The TLB model checker's run as a trace (tests/generic/tlb_model_mt.c,
# docs/testing.md "The run as a trace"; builds with CONFIG_S2_TRACE and
# x86-ept, skipped otherwise): a short run of one configuration kept with
# S2_TRACE_ALL replays with no syntax error and no failed call, the host's
# remaps as host_block lines and the vcpus' root loads as mmu_load lines,
# ending in tables that pass the three-way check. Results of calls that
# raced may differ (exit 1 with a few failed expectations is allowed). The
# tables it dumps map the host's frames, which without the host_block lines
# they do not.
. "$(dirname "$0")/lib/common.sh"
BIN=$S2_O/tests/test_generic_tlb_model_mt_x86_ept

if ! grep -q '^CONFIG_S2_TRACE=y' "$S2_O/.config" || ! built x86-ept; then
	echo "tlb_trace: this build has no call trace or no x86-ept, skipped"
	exit 0
fi
mkdir -p "$TMP/t"
if run 0 env S2_TRACE_ALL=1 S2_TRACE_DIR="$TMP/t" TLB_CFG=ad-hw-get TLB_OPS=150 \
	TLB_SECONDS=0.4 "$BIN"; then
	t=$(ls "$TMP"/t/tlb_model-x86-ept-ad-hw-get-*.trace 2>/dev/null | head -n 1)
	if [ -z "$t" ]; then
		fail "no trace kept"
	else
		for v in '^host level=1 hva=' '^host_block ' '^mmu_load vcpu=' '^fault vcpu=.* # vcpu [0-9] => ' '^zap .* => [0-9]'; do
			checks=$((checks + 1))
			grep -qE "$v" "$t" || fail "no line matches $v"
		done
		"$S2MMU" replay "$t" >"$TMP/out" 2>"$TMP/err"
		rc=$?
		checks=$((checks + 1))
		[ "$rc" -le 1 ] || { fail "replay exit $rc"; sed 's/^/    err| /' "$TMP/err" | head; }
		has ' 0 failed calls'
		has ' 0 mismatches'
		# The host's frames (pfn 2^20 + page at version 0: hpa 0x0001...),
		# not the replay's default (pfn = hva >> 12: hpa 0x1000...).
		"$S2MMU" replay --dump "$t" >"$TMP/out" 2>"$TMP/err"
		has ' -> hpa 0x0001'
		# Without the host_block lines, and without the checker's
		# map_range calls (they name the host's other frames, hpa
		# 0x0001... too), the replay's default frames remain.
		grep -vE '^(host_block|map_range) ' "$t" >"$TMP/nohost.trace"
		"$S2MMU" replay --dump "$TMP/nohost.trace" >"$TMP/out" 2>"$TMP/err"
		hasnt ' -> hpa 0x0001'
		has ' -> hpa 0x1000'
	fi
fi
finish
