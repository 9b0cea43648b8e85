# SPDX-License-Identifier: MIT
#
# `make bench-plot`: the BENCH lines of a bench run as a PNG in build/
# (scripts/bench-plot.sh; gnuplot, installed by `scripts/install-deps.sh
# plot` for this target only). BENCH_LOG is the run to plot; when it does
# not exist, `make bench` runs first and its output (with the date and the
# machine's load before the run) is kept there.

BENCH_LOG ?= $(BENCH_O)/bench.log
BENCH_PNG ?= $(BENCH_O)/bench.png

bench-plot:
	$(Q)$(srctree)/scripts/install-deps.sh plot
	$(Q)if [ ! -s "$(BENCH_LOG)" ]; then \
		echo "bench-plot: no $(BENCH_LOG): make bench first (a few minutes)"; \
		mkdir -p "$(dir $(BENCH_LOG))"; \
		{ echo "# $$(date -u +%Y-%m-%d), load $$(cut -d' ' -f1-3 /proc/loadavg) before the run"; \
		  $(MAKE) --no-print-directory bench; } > "$(BENCH_LOG).tmp" 2>&1 || \
			{ cat "$(BENCH_LOG).tmp"; exit 1; }; \
		mv "$(BENCH_LOG).tmp" "$(BENCH_LOG)"; \
	fi
	$(Q)$(srctree)/scripts/bench-plot.sh "$(BENCH_LOG)" "$(BENCH_PNG)"

.PHONY: bench-plot
