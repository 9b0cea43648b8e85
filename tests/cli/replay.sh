#!/usr/bin/env bash
# s2mmu replay: every trace in tests/cli/traces replays with its
# expectations met and the final tables agreeing with the reference walkers
# (tests/ref), the tool's decoder and its image walk; traces written here
# check the exit statuses (a wrong expectation 1, syntax 2, a missing file
# 3, a failed call 4) and that progress stays off stderr when it is not a
# terminal. Mutations seen failing: check_leaf returning at once (the
# library's leaf count then differs from the image walk's: every trace
# fails), expectations ignored.
. "$(dirname "$0")/lib/common.sh"

for t in "$TRACES"/*.trace; do
	built_trace "$t" || continue
	run 0 "$S2MMU" replay "$t"
	has ' 0 mismatches'; has '0 failed expectations, 0 failed calls'
	checks=$((checks + 1))
	[ -s "$TMP/err" ] && fail "$(basename "$t"): stderr not empty (progress off a terminal?)"
	run 0 "$S2MMU" replay --json "$t"
	has '"mismatches":0'; has '"failed_expectations":0'
done

# The check counts leaves: the EPT trace maps three 4 KiB leaves and one 2 MiB.
if built x86-ept; then
	run 0 "$S2MMU" replay "$TRACES/ept-basic.trace"
	has 'check: 4 leaves (0x203000 bytes)'
fi

# A fault the run saw retry raced a concurrent call (its line is written
# when it returns); the replay fixes it at once and then finds the run's
# own retry spurious: both counted as raced, not failed. The same pair
# without the retry (FIXED twice) is a real difference. Mutation seen
# failing: raced_fault() returning false (2 failed expectations).
for f in x86-ept riscv-g; do
	built "$f" || continue
	{
		echo "vm fmt=$f gpa_bits=39 vcpus=1"
		echo "memslot id=0 gfn=0x40000 npages=16 hva=0x7f0000000000 => 0"
		echo "fault vcpu=0 gpa=0x40001000 access=r => 2"
		echo "fault vcpu=0 gpa=0x40001000 access=r => 0"
		echo "fault vcpu=0 gpa=0x40002000 access=r => 0"
	} >"$TMP/raced-$f.trace"
	run 0 "$S2MMU" replay "$TMP/raced-$f.trace"
	has '0 failed expectations, 0 failed calls, 2 faults that raced in the run'
	sed 's/=> 2$/=> 0/' "$TMP/raced-$f.trace" >"$TMP/notraced-$f.trace"
	run 1 "$S2MMU" replay "$TMP/notraced-$f.trace"
	has '1 failed expectations, 0 failed calls, 0 faults that raced in the run'
done

# The other way round: the run's fault completed just before an
# invalidation began, but its line came after the invalidation's start
# (lines are written at return). The replay finds it inside and retries;
# it runs it again after the next lines, and once the invalidation ended
# it gives what the trace says. Without the end it never does: a failure.
# Mutation seen failing: run_deferred() never clearing (1 failed).
for f in x86-ept riscv-g; do
	built "$f" || continue
	{
		echo "vm fmt=$f gpa_bits=39 vcpus=1"
		echo "memslot id=0 gfn=0x40000 npages=16 hva=0x7f0000000000 => 0"
		echo "invalidate_start hva=0x7f0000001000 end=0x7f0000002000 may_block=0 => 0"
		echo "fault vcpu=0 gpa=0x40001000 access=r => 0"
		echo "invalidate_end hva=0x7f0000001000 end=0x7f0000002000 may_block=0 => 0"
		echo "fault vcpu=0 gpa=0x40001000 access=r => 1"
	} >"$TMP/deferred-$f.trace"
	run 0 "$S2MMU" replay --dump "$TMP/deferred-$f.trace"
	has '0 failed expectations, 0 failed calls, 1 faults that raced in the run'
	has 'gpa 0x000040001000-0x000040002000'
	grep -v '^invalidate_end' "$TMP/deferred-$f.trace" >"$TMP/undeferred-$f.trace"
	run 1 "$S2MMU" replay "$TMP/undeferred-$f.trace"
	has 'failed expectations'
	grep -qF 'never gave' "$TMP/err" || fail "$f: no word of the deferred fault"
	checks=$((checks + 1))
done

# Cached MMIO entries, in every format: the generation each entry carries,
# as the tool's decoder reads it in the image, is the one the trace's memslot
# changes give (1 for gfn 0xfec00, 0 after the wrap of 2 bits for the
# others); one exit was answered from the cache, one wrap cleared them.
for f in x86-ept x86-npt arm64-s2 riscv-g; do
	sed "s/fmt=x86-ept/fmt=$f/" "$TRACES/ept-mmio.trace" >"$TMP/mmio-$f.trace"
	built_trace "$TMP/mmio-$f.trace" || continue
	run 0 "$S2MMU" replay --dump "$TMP/mmio-$f.trace"
	grep -F 'gpa 0x0000fec00000' "$TMP/out" | grep -qF 'mmio generation 0x1' ||
		fail "$f: 0xfec00's MMIO entry does not carry generation 1"
	for g in fed00000 fee00000; do
		grep -F "gpa 0x0000$g" "$TMP/out" | grep -qF 'mmio generation 0' ||
			fail "$f: 0x$g's MMIO entry does not carry generation 0"
	done
	checks=$((checks + 3))
	run 0 "$S2MMU" replay --json "$TMP/mmio-$f.trace"
	has '"exits_mmio_cached":1'; has '"mmio_wraps":1'; has '"mmio_entries":5'
done
# NPT with host_pa_bits 48: the reserved-bit form (P=1, bits 51:48 set), the
# generation below them, as the tool reads it.
sed 's/fmt=x86-ept/fmt=x86-npt host_pa_bits=48/' "$TRACES/ept-mmio.trace" >"$TMP/mmio-rsvd.trace"
if built_trace "$TMP/mmio-rsvd.trace"; then
	run 0 "$S2MMU" replay --dump "$TMP/mmio-rsvd.trace"
	has '* gpa 0x0000fec00000 level 1 value 0xf00000000100b: mmio generation 0x1'
	has '* gpa 0x0000fee00000 level 1 value 0xf00000000000b: mmio generation 0'
fi
# The rest replays EPT VMs.
if ! built x86-ept; then
	echo "skipped: the EPT traces below (no x86-ept in this build)"
	finish
	exit
fi
# The cache off (the library's default): no MMIO entry, nothing answered from it.
sed 's/ mmio_cache=1//' "$TRACES/ept-mmio.trace" >"$TMP/nocache.trace"
run 0 "$S2MMU" replay --dump "$TMP/nocache.trace"
hasnt 'mmio generation'
run 0 "$S2MMU" replay --json "$TMP/nocache.trace"
has '"exits_mmio_cached":0'; has '"mmio_entries":0'

# A wrong expectation: exit 1, the line named.
cat >"$TMP/bad-expect.trace" <<'T'
vm fmt=x86-ept
memslot id=0 gfn=0x100 npages=16 hva=0x100000
fault gpa=0x100000 access=r => 3
T
run 1 "$S2MMU" replay "$TMP/bad-expect.trace"
has 'bad-expect.trace:3: fault returned 0, the trace expects 3' "$TMP/err"

# expect_map (what a test expected, tests/lib t_trace_line): met, then not.
cat >"$TMP/expect-map.trace" <<'T'
vm fmt=x86-ept
memslot id=0 gfn=0x100 npages=16 hva=0x100000
fault gpa=0x101000 access=r => 0
expect_map gpa=0x101000 hpa=0x101000 write=1
expect_map gpa=0x102000 hpa=none
T
run 0 "$S2MMU" replay "$TMP/expect-map.trace"
printf 'expect_map gpa=0x101000 hpa=0x101000 write=0\nexpect_map gpa=0x101000 hpa=none\n' \
	>>"$TMP/expect-map.trace"
run 1 "$S2MMU" replay "$TMP/expect-map.trace"
has 'expect-map.trace:6: expect_map gpa 0x101000: the reference walker translates to 0x101000 writable, the trace expects 0x101000 read-only' "$TMP/err"
has 'expect-map.trace:7: expect_map gpa 0x101000' "$TMP/err"
has '2 failed expectations' 

# host and host_block: a remapped, read-only block of the simulated host.
cat >"$TMP/host-block.trace" <<'T'
host level=2 hva=0x100000 end=0x400000
vm fmt=x86-ept
memslot id=0 gfn=0x100 npages=0x300 hva=0x100000
host_block hva=0x200000 end=0x400000 pfn_off=0x1000 readonly=1 level=1
fault gpa=0x101000 access=rw => 0
fault gpa=0x200000 access=r => 0
fault gpa=0x201000 access=w => -EFAULT
expect_map gpa=0x200000 hpa=0x1200000 write=0
T
run 0 "$S2MMU" replay "$TMP/host-block.trace"
printf 'memslot id=1 gfn=0x1000 npages=1 hva=0x400000\nfault gpa=0x1000000 access=r => -EFAULT\n' \
	>>"$TMP/host-block.trace"
run 0 "$S2MMU" replay "$TMP/host-block.trace"

# Syntax errors: exit 2 with the line.
printf 'vm fmt=x86-ept\nfault gpa=zz access=r\n' >"$TMP/syn1.trace"
run 2 "$S2MMU" replay "$TMP/syn1.trace"
has 'syn1.trace:2: bad value for' "$TMP/err"
printf 'vm fmt=x86-ept\nzap gfn=1\n' >"$TMP/syn2.trace"
run 2 "$S2MMU" replay "$TMP/syn2.trace"
has 'missing end=' "$TMP/err"
printf 'vm fmt=x86-ept\nfrobnicate a=1\n' >"$TMP/syn3.trace"
run 2 "$S2MMU" replay "$TMP/syn3.trace"
has "unknown call 'frobnicate'" "$TMP/err"
printf 'vm fmt=x86-ept\ntdx_init\n' >"$TMP/syn4.trace"
run 2 "$S2MMU" replay "$TMP/syn4.trace"
if grep -q '^CONFIG_S2_TDX=y' "$S2_O/.config"; then
	has 'missing shared_bit=' "$TMP/err"
	printf 'vm fmt=x86-ept\ntdx_page_add gfn=0 src=0x1000\n' >"$TMP/syn4b.trace"
	run 2 "$S2MMU" replay "$TMP/syn4b.trace"
	has "'tdx_page_add' before 'tdx_init'" "$TMP/err"
else
	has 'needs an s2mmu built with CONFIG_S2_TDX' "$TMP/err"
fi
printf 'fault gpa=0 access=r\n' >"$TMP/syn5.trace"
run 2 "$S2MMU" replay "$TMP/syn5.trace"
printf 'vm fmt=x86-ept\nzap gfn=1 end=2 extra=3\n' >"$TMP/syn6.trace"
run 2 "$S2MMU" replay "$TMP/syn6.trace"
has "unknown argument 'extra'" "$TMP/err"

# A call the library refuses, without an expectation: exit 4; with it: 0.
printf 'vm fmt=x86-ept\nmemslot id=0 gfn=0x100 npages=0 hva=0x1000\n' >"$TMP/fail.trace"
run 4 "$S2MMU" replay "$TMP/fail.trace"
printf 'vm fmt=x86-ept\nmemslot id=0 gfn=0x100 npages=0 hva=0x1000 => -EINVAL\n' >"$TMP/ok.trace"
run 0 "$S2MMU" replay "$TMP/ok.trace"
# A VM the library refuses (EPT has no 40-bit... widths under 32 bits).
printf 'vm fmt=x86-ept gpa_bits=20\n' >"$TMP/novm.trace"
run 4 "$S2MMU" replay "$TMP/novm.trace"

# stdin, and files that are not there.
run 0 "$S2MMU" replay - <"$TRACES/ept-basic.trace"
run 3 "$S2MMU" replay "$TMP/nosuch.trace"
run 2 "$S2MMU" replay
finish
