#!/bin/busybox sh
# SPDX-License-Identifier: MIT
# The riscv64 Linux guest's /init (see mk-initramfs.sh). The hypervisor reads
# the console: LX-BOOTED, MEMCHECK-START, the rounds, then MEMCHECK-OK or
# MEMCHECK-FAIL.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "LX-BOOTED $(uname -r) $(grep -c ^processor /proc/cpuinfo) cpus, $(cat /proc/uptime)"
rounds=8
for a in $(cat /proc/cmdline); do
	case $a in
	lxrounds=*) rounds=${a#lxrounds=} ;;
	esac
done
grep -E "^(hart|isa|mmu)" /proc/cpuinfo | sort -u
echo "MEMCHECK-START $rounds rounds"
ok=1
i=1
while [ $i -le "$rounds" ]; do
	dd if=/dev/urandom of=/tmp/f$i bs=64k count=32 2>/dev/null
	md5sum /tmp/f$i >>/tmp/sums
	if ! md5sum -cs /tmp/sums; then
		ok=0
		md5sum -c /tmp/sums 2>&1 | grep -v ': OK$'
	fi
	echo "MEMCHECK-ROUND $i $(cut -c1-8 /tmp/sums | tail -1)"
	i=$((i + 1))
done
if [ $ok = 1 ] && md5sum -cs /tmp/sums; then echo MEMCHECK-OK; else echo MEMCHECK-FAIL; fi
head -2 /proc/meminfo
echo "LX-DONE $(cat /proc/uptime)"
if grep -q lxshell /proc/cmdline; then
	echo "interactive shell (exit or poweroff -f to end):"
	setsid cttyhack sh
fi
# The polled console sends what is still buffered.
sleep 0.2
poweroff -f
