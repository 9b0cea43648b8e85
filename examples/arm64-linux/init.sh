#!/bin/busybox sh
# SPDX-License-Identifier: MIT
#
# The test init (/init of the initramfs): a memory workload that checksums
# what it wrote, while the hypervisor moves guest RAM and migrates it. Two
# workers (one per CPU, roughly) each keep FILES files of MB MiB in tmpfs:
# every round one file is rewritten from /dev/urandom and its md5 recorded,
# then every file's md5 is checked again. They go on until the hypervisor
# says its moves and migration are done (and at least FILES rounds), and at
# most MAXR rounds. The verdict goes to the hypervisor's control registers
# (layout.h G_CTL) with devmem, then PSCI SYSTEM_OFF (poweroff -f).
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
CTL=$((0x0c000000))
FILES=3 MB=2 MAXR=60
ctl() { devmem $((CTL + $1)) 32 "$2"; }
echo "GUEST-OK: $(uname -sr), $(grep -c ^processor /proc/cpuinfo) CPUs, $(grep MemTotal /proc/meminfo)"
shell=0
grep -q s2test=shell /proc/cmdline && shell=1

worker() {
	w=$1 i=0
	while :; do
		i=$((i + 1))
		k=$((i % FILES))
		f=/tmp/w$w.f$k
		dd if=/dev/urandom of=$f bs=64k count=$((MB * 16)) 2>/dev/null
		md5sum $f >/tmp/w$w.s$k
		for s in /tmp/w$w.s*; do
			md5sum -c -s $s || { echo "MEMCHECK-FAIL: worker $w round $i: $s"; return 1; }
		done
		ctl 12 $i
		[ $i -ge $FILES ] && [ $(($(devmem $((CTL + 8)) 32))) = 1 ] && break
		[ $i -ge $MAXR ] && { echo "worker $w: hypervisor not done after $i rounds"; break; }
	done
	echo "worker $w: $i rounds, checksums held"
}

ctl 0 1
worker 0 & p0=$!
worker 1 & p1=$!
rc=0
wait $p0 || rc=1
wait $p1 || rc=1
if [ $rc = 0 ]; then echo MEMCHECK-OK; else echo MEMCHECK-FAIL; fi
ctl 4 $rc
if [ $shell = 1 ]; then
	echo "interactive shell on the console (poweroff -f ends the run):"
	setsid cttyhack sh
fi
poweroff -f
