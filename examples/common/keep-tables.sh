# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Sourced by the QEMU examples' run scripts (sh or bash): a failed run keeps
# its stage-2 tables. After its FAIL verdict the hypervisor prints
#   WHO: tables: fmt F gpa_bits N[ granule G][ flags L], pool P size S, root R
# (../common/tables.h) and waits some seconds before it ends the run. The
# script, whose QEMU has its monitor on a pipe pair (-monitor pipe:DIR/mon),
# then stops the CPUs, saves [P, P + S) (the table pool, never guest RAM)
# with pmemsave into DIR/tables.img and quits QEMU, whose exit status is then
# 0 (the verdict is the hypervisor's own line). A passing run prints no such
# line: nothing is saved and nothing waits.
#
#   kt_open DIR LOG   before QEMU starts: makes the FIFOs DIR/mon.in and
#                     DIR/mon.out (QEMU: -monitor pipe:DIR/mon), removes an
#                     old DIR/tables.img; LOG is where QEMU's console goes
#   kt_poll           while QEMU runs (as cpu_limit_each of cpu-limit.sh):
#                     once LOG has the tables line, sends stop, pmemsave and
#                     quit (the monitor runs them in turn) and sets kt_quit=1
#                     (and DIR/kt.quit). Returns 0 from then on, 1 before
#   kt_watch PID [S]  kt_poll every S seconds (default 0.1) while PID runs,
#                     started in the background (kt_watch $qemu >/dev/null &
#                     kt_watcher=$!) so that the script's own wait for QEMU
#                     ends the moment QEMU does: a passing run loses no poll
#   kt_close          after QEMU ended: removes the FIFOs; kt_saved=1 when
#                     DIR/tables.img holds the whole pool (kt_check), and
#                     DIR/tables.txt then has the s2mmu dump command for it
#   kt_report PREFIX  prints what kt_close found, with that command
# Another emulator's script (bochs) sets kt_dir and kt_log itself and calls
# kt_parse and kt_check after its own save, then kt_report.
kt_open() {
	kt_dir=$1 kt_log=$2 kt_quit=0 kt_saved=0 kt_line="" kt_cmd="" kt_watcher=""
	rm -f "$kt_dir/mon.in" "$kt_dir/mon.out" "$kt_dir/tables.img" "$kt_dir/tables.txt" \
		"$kt_dir/kt.quit"
	mkfifo "$kt_dir/mon.in" "$kt_dir/mon.out" || return 1
	# QEMU opens both FIFOs read-write: neither open here waits for it.
	exec 7<>"$kt_dir/mon.in"
	cat "$kt_dir/mon.out" >"$kt_dir/monitor.log" &
	kt_reader=$!
}

# kt_field NAME: the value after " NAME " in the tables line (a flags list
# has commas; the comma before ", pool" is not the value's).
kt_field() {
	echo "$kt_line" | sed -n "s/.* $1 \([^ ]*\).*/\1/p" | sed 's/,$//'
}

# kt_parse: the tables line of kt_log into kt_fmt, kt_bits, kt_pool, ...;
# 1 when there is none (yet).
kt_parse() {
	grep -q -a ': tables: fmt ' "$kt_log" 2>/dev/null || return 1
	kt_line=$(grep -a -m1 ': tables: fmt ' "$kt_log" | tr -d '\r')
	kt_fmt=$(kt_field fmt) kt_bits=$(kt_field gpa_bits) kt_pool=$(kt_field pool)
	kt_size=$(kt_field size) kt_root=$(kt_field root)
	kt_gran=$(kt_field granule) kt_flags=$(kt_field flags)
	case "$kt_pool $kt_size $kt_root" in
	0x*" 0x"*" 0x"*) ;;
	*) return 1 ;;
	esac
}

kt_poll() {
	[ "$kt_quit" = 1 ] && return 0
	kt_parse || return 1
	# First the mark (kt_watch's caller may end it once QEMU quit).
	: >"$kt_dir/kt.quit"
	# Quoted: HMP would read "SIZE /path" as a division.
	printf 'stop\npmemsave %s %s "%s"\nquit\n' "$kt_pool" "$kt_size" "$kt_dir/tables.img" >&7
	kt_quit=1
}

kt_watch() {
	while kill -0 "$1" 2>/dev/null; do
		kt_poll && return 0
		sleep "${2:-0.1}"
	done
}

# kt_check: kt_saved=1 and DIR/tables.txt when DIR/tables.img holds the
# whole pool of the parsed line.
kt_check() {
	if [ -f "$kt_dir/tables.img" ] && [ "$(stat -c %s "$kt_dir/tables.img")" -eq $((kt_size)) ]; then
		kt_saved=1
		kt_cmd="s2mmu dump --fmt $kt_fmt --gpa-bits $kt_bits${kt_gran:+ --granule $kt_gran}"
		kt_cmd="$kt_cmd${kt_flags:+ --flags $kt_flags} --root $kt_root --image-base $kt_pool"
		kt_cmd="$kt_cmd --image $kt_dir/tables.img"
		echo "$kt_cmd" >"$kt_dir/tables.txt"
	fi
}

kt_close() {
	if [ -n "$kt_watcher" ]; then
		kill "$kt_watcher" 2>/dev/null
		wait "$kt_watcher" 2>/dev/null
		kt_watcher=""
	fi
	exec 7>&-
	kill "$kt_reader" 2>/dev/null
	wait "$kt_reader" 2>/dev/null
	rm -f "$kt_dir/mon.in" "$kt_dir/mon.out"
	# kt_watch polled in a subshell: its parse is redone here.
	[ -f "$kt_dir/kt.quit" ] && kt_quit=1 && kt_parse
	[ "$kt_quit" = 1 ] && kt_check
	return 0
}

# kt_status LOG: after kt_close, when QEMU quit on kt_poll's command (its
# status then 0), set rc to the exit code of the hypervisor's FAIL line in
# LOG; quit gets the words the run scripts print after the status.
kt_status() {
	quit=""
	if [ "$kt_quit" = 1 ] && [ "$rc" -eq 0 ]; then
		rc=$(sed -n 's/^hyp: FAIL (exit code \([0-9]*\))$/\1/p' "$1" | tail -1)
		rc=${rc:-1}
		quit=" (QEMU quit after the save: the status of the hypervisor's FAIL line)"
	fi
}

kt_report() {
	[ -n "$kt_line" ] || return 0
	if [ "$kt_saved" = 1 ]; then
		echo "$1 the failed run's tables (the pool at $kt_pool, $((kt_size >> 10)) KiB) are" \
			"in $kt_dir/tables.img; look at them with"
		echo "    $kt_cmd"
	else
		echo "$1 the failed run's tables could not be saved (no whole image; see" \
			"$kt_dir/monitor.log)"
	fi
}
