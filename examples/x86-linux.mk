# SPDX-License-Identifier: MIT
#
# x86 Linux guests (issue 18). examples/x86-linux-npt/run.sh is a conformance
# runner by its name (run.mk's wildcard); its two sabotaged builds are one
# more step of make conformance.
CONFORMANCE_RUNNERS += examples/x86-linux-npt/sabotaged.sh
