#!/bin/busybox sh
# SPDX-License-Identifier: MIT
# /init of the x86 Linux examples' initramfs (scripts/fetch-guest-amd64.sh
# packs it). It talks to the hypervisor through port 0xf4 (/dev/port): see
# linux.c. Every step prints what it saw; the hypervisor decides pass/fail.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
hv() { printf "\\$(printf %03o "$1")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null; }
hvin() { dd if=/dev/port bs=1 skip=244 count=1 2>/dev/null | od -An -tu1 | tr -d ' \n'; }
outb() { printf "\\$(printf %03o "$2")" | dd of=/dev/port bs=1 seek=$(($1)) count=1 2>/dev/null; }
# $1 msr, $2 eight bytes as printf escapes
wrmsr() { printf "$2" | dd of=/dev/cpu/0/msr bs=8 count=1 seek=$(($1)) oflag=seek_bytes conv=notrunc 2>/dev/null; }
rdmsr() { dd if=/dev/cpu/0/msr bs=8 count=1 skip=$(($1)) iflag=skip_bytes 2>/dev/null | od -An -tx8 | tr -d ' \n'; }

echo GUEST-OK
uname -a
head -2 /proc/meminfo
hv 1

# Partition probes: take the host through the SVM MSRs, move the local APIC,
# reset the machine three ways. The run goes on only if all of them failed.
if insmod /msr.ko; then
	echo "probe: VM_HSAVE_PA was $(rdmsr 0xc0010117)"
	wrmsr 0xc0010117 '\000\020\000\000\000\000\000\000'
	echo "probe: VM_HSAVE_PA wrote 0x1000, reads $(rdmsr 0xc0010117)"
	wrmsr 0xc0010114 '\030\000\000\000\000\000\000\000'
	echo "probe: VM_CR wrote 0x18, reads $(rdmsr 0xc0010114)"
	echo "probe: MTRR_DEF_TYPE $(rdmsr 0x2ff)"
	if wrmsr 0x1b '\000\011\320\376\000\000\000\000'; then
		echo "probe: APIC_BASE moved to 0xfed00000: accepted"
	else
		echo "probe: APIC_BASE move refused"
	fi
else
	echo "probe: no msr driver"
fi
outb 0xcf9 0x0e
outb 0x64 0xfe
outb 0x92 0x01
echo "probe: reset through 0xcf9, 0x64 and 0x92 tried, still running"
hv 9

# Moves: the host moves 2 MiB blocks of RAM under a checksum workload.
dd if=/dev/urandom of=/tmp/a bs=1M count=8 2>/dev/null
A=$(md5sum </tmp/a)
hv 2
ok=1
i=0
while [ $i -lt 3 ]; do
	cp /tmp/a /tmp/b
	[ "$(md5sum </tmp/b)" = "$A" ] || ok=0
	[ "$(md5sum </tmp/a)" = "$A" ] || ok=0
	i=$((i + 1))
done
hv 3
if [ $ok = 1 ]; then echo "MEMCHECK-MOVES-OK $A"; hv 5; else echo MEMCHECK-MOVES-FAIL; hv 6; fi

# Migration: keep dirtying memory until the host says it switched.
hv 4
ok=1
i=0
while [ "$(hvin)" != 1 ] && [ $i -lt 100 ]; do
	cp /tmp/a /tmp/c
	[ "$(md5sum </tmp/c)" = "$A" ] || ok=0
	i=$((i + 1))
done
echo "migration: host switched after $i rounds"
[ "$(md5sum </tmp/a)" = "$A" ] || ok=0
[ "$(md5sum </tmp/b)" = "$A" ] || ok=0
[ "$(md5sum </tmp/c)" = "$A" ] || ok=0
if [ $ok = 1 ] && [ "$(hvin)" = 1 ]; then echo MEMCHECK-MIGRATION-OK; hv 7; else echo MEMCHECK-MIGRATION-FAIL; hv 8; fi
cat /proc/uptime
if grep -q lx.shell /proc/cmdline; then
	echo "a shell on the guest's console (make run GUEST=linux): exit it to end the run"
	setsid cttyhack sh
fi
hv 16
echo "the hypervisor did not end the run"
reboot -f
