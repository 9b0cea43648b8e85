#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The x86 Linux NPT example's checks can fail: boot it in its two sabotaged
# builds (run.sh --break-flush: the library's flush reaches no running vcpu;
# run.sh --drop-dirty: the migration forgets one dirty page). Each must end
# on its own check, detected, not hung; this exits 0 only if both did.
set -u
here=$(cd "$(dirname "$0")" && pwd)
rc=0
for m in --break-flush --drop-dirty; do
	echo "== x86-linux-npt $m (must fail its check)"
	bash "$here/run.sh" $m || rc=1
done
exit $rc
