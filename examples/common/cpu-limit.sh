# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Sourced by the Linux examples' run.sh: an outer limit for one emulator run
# that a loaded machine does not trip. The hypervisor's own watchdog turns a
# stuck guest into a FAIL line; this only ends a run that cannot report (a
# hypervisor stuck itself, an emulator that never starts the guest). It
# counts the emulator's own CPU time, which a machine shared with other jobs
# stretches as little as it stretches the guest's progress, and a generous
# wall-clock cap besides.
#
#   cpu_limit CPU_S WALL_S CMD...   run CMD; end it (TERM, then KILL) once it
#                                   has used CPU_S seconds of CPU or WALL_S
#                                   seconds have passed. Returns CMD's status,
#                                   or 124 if it was ended (as timeout(1)).
#   cpu_limit_each=CMD              run CMD (a function, in this shell) every
#                                   half second while CMD... runs (the
#                                   tables' watch: keep-tables.sh kt_poll)

cpu_limit() {
	local cpu=$1 wall=$2 pid t0 used=0 hz
	shift 2
	hz=$(getconf CLK_TCK)
	"$@" &
	pid=$!
	t0=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		sleep 0.5
		[ -z "${cpu_limit_each:-}" ] || $cpu_limit_each || :
		# utime + stime of every thread (fields 14, 15; comm has no blank).
		used=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || break
		if [ $((used / hz)) -ge "$cpu" ] || [ $((SECONDS - t0)) -ge "$wall" ]; then
			echo "cpu_limit: ended after $((used / hz)) s of CPU and $((SECONDS - t0)) s" \
				"(limits $cpu s of CPU, $wall s)" >&2
			kill -TERM "$pid" 2>/dev/null
			sleep 2
			kill -KILL "$pid" 2>/dev/null
			wait "$pid"
			return 124
		fi
	done
	wait "$pid"
}
