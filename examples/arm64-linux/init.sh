#!/bin/busybox sh
# SPDX-License-Identifier: MIT
#
# The test init (/init of the initramfs): a memory workload that checksums
# what it wrote, while the hypervisor moves guest RAM and migrates it. Two
# workers (one per CPU, roughly) each keep FILES files of MB MiB in tmpfs:
# every round one file is rewritten from /dev/urandom and its md5 recorded,
# then every file's md5 is checked again and every file compared with a copy
# written after it (cmp says which bytes went wrong, as the check read them:
# diag). They go on until the hypervisor
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
# s2test=poison (run.sh --diag-test): worker 1 overwrites one word of its
# file with the hypervisor's poison after taking its md5, so the failure
# report (diag) can be seen working.
poison=0
grep -q s2test=poison /proc/cmdline && poison=1

# A checksum failed: say how. The file against its copy (per 4 KiB page:
# bytes that differ), the first differing 8-byte word in both (the
# hypervisor's poison 0xdeadbeefdeadbeef there: a read through a stale
# translation), and both words to the hypervisor, which searches host RAM
# for them and ties what it finds to its moves (layout.h CTL_DIAG_*).
diag() {
	f=$1 s=$2 how=$3
	# cmp's output of the check that failed (cmp): what it read then.
	if [ "$how" = cmp ]; then
		mv $f.cmp $f.chk
		echo "MEMCHECK-DIAG: the check's cmp read $(wc -l <$f.chk) bytes differing (offset file copy, octal):"
		awk '{ print int(($1 - 1) / 4096) }' $f.chk | uniq -c | head -16
		head -8 $f.chk
	fi
	echo "MEMCHECK-DIAG: $s says $(cat $s); now $(md5sum $f); copy $(md5sum $f.c)"
	md5sum -c -s $s && cmp -s $f $f.c && echo "MEMCHECK-DIAG: md5sum -c and cmp pass now: what the check read was wrong, not the file"
	cmp -l $f $f.c >$f.cmp
	echo "MEMCHECK-DIAG: $(wc -l <$f.cmp) bytes differ from the copy, per 4 KiB page of the file (bytes page):"
	awk '{ print int(($1 - 1) / 4096) }' $f.cmp | uniq -c | head -16
	# The word: where the failed cmp saw a difference, else where one is now.
	src=$f.cmp
	[ "$how" = cmp ] && [ -s $f.chk ] && src=$f.chk
	[ -s $src ] || return
	o=$(($(head -1 $src | awk '{ print $1 }') - 1))
	o=$((o - o % 8))
	echo "MEMCHECK-DIAG: first differing word at file offset $o (page offset $((o % 4096))): file, then copy"
	hexdump -C -s $((o - o % 32)) -n 64 $f
	hexdump -C -s $((o - o % 32)) -n 64 $f.c
	set -- $(od -A n -t u4 -j $o -N 8 $f) $(od -A n -t u4 -j $o -N 8 $f.c)
	ctl 16 $1
	ctl 20 $2
	ctl 24 $3
	ctl 28 $4
	ctl 32 $((o % 4096))
}

worker() {
	w=$1 i=0
	while :; do
		i=$((i + 1))
		k=$((i % FILES))
		f=/tmp/w$w.f$k
		dd if=/dev/urandom of=$f bs=64k count=$((MB * 16)) 2>/dev/null
		cp $f $f.c
		md5sum $f >/tmp/w$w.s$k
		[ $poison = 1 ] && [ $w = 1 ] && [ $i = 2 ] &&
			printf '\357\276\255\336\357\276\255\336' |
			dd of=$f bs=8 seek=$((4096 * 3 / 8 + 5)) conv=notrunc 2>/dev/null
		for s in /tmp/w$w.s*; do
			f=/tmp/w$w.f${s##*.s}
			how=
			md5sum -c -s $s || how=md5sum
			[ -n "$how" ] || cmp -l $f $f.c >$f.cmp 2>&1 || how=cmp
			[ -z "$how" ] || {
				ctl 36 $w
				echo "MEMCHECK-FAIL: worker $w round $i: $s ($how)"
				diag $f $s $how
				return 1
			}
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
