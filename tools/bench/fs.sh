#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the filesystem benchmark (part of 'make bench', with the
# module loaded): fio 4k random read, sequential read and sequential write
# on emfs and on tmpfs, side by side in one run, printed as ratios; then
# emfs reads with a cold page cache, right after a full shrink of the
# extent map cache versus with the maps warm.
#
#   emfs_bench_fs_mb   file size in MiB (default 256)

set -eu
mb=${emfs_bench_fs_mb:-256}
out=${EMFS_OUT:-/tmp}
emfs=/tmp/bench-emfs
tmp=/tmp/bench-tmpfs
mkdir -p "$emfs" "$tmp"
mount -t emfs -o size=$((mb * 2 + 64))M none "$emfs"
mount -t tmpfs -o size=$((mb * 2 + 64))M none "$tmp"
id=$(dmesg | sed -n 's/.*emfs: mounted: owner \([0-9]*\),.*/\1/p' | tail -1)
stats=/proc/fs/emfs/$id/stats
shrinker=$(ls -d /sys/kernel/debug/shrinker/emfs-extent-map:"$id"-* | head -1)

# fio_run DIR NAME ARGS...: prints "<MiB/s> <IOPS>".
fio_run() {
	local dir=$1 name=$2
	shift 2
	fio --name="$name" --filename="$dir/bench" --size="${mb}M" \
		--ioengine=psync --output-format=json "$@" >/tmp/fio.json
	python3 - <<'PY'
import json
j = json.load(open("/tmp/fio.json"))["jobs"][0]
d = j["write"] if j["write"]["io_bytes"] else j["read"]
print(f'{d["bw"] / 1024:.1f} {d["iops"]:.0f}')
PY
}

stat_of() { awk -v k="$1" '$1 == k { print $2 }' "$stats"; }

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }

declare -A r
for fs in emfs tmpfs; do
	dir=$emfs
	[ $fs = tmpfs ] && dir=$tmp
	r[$fs.seqwrite]=$(fio_run "$dir" seqwrite --rw=write --bs=128k --end_fsync=1)
	r[$fs.seqread]=$(fio_run "$dir" seqread --rw=read --bs=128k)
	r[$fs.randread]=$(fio_run "$dir" randread --rw=randread --bs=4k)
done

echo "== filesystem benchmark: fio, ${mb} MiB file, psync, page cache warm"
printf '%-22s %12s %12s %8s\n' job "emfs MiB/s" "tmpfs MiB/s" ratio
for job in randread seqread seqwrite; do
	set -- ${r[emfs.$job]} ${r[tmpfs.$job]}
	label=$job
	case $job in
	randread) label="4k random read" ;;
	seqread) label="sequential read" ;;
	seqwrite) label="sequential write" ;;
	esac
	printf '%-22s %12s %12s %8s\n' "$label" "$1" "$3" "$(ratio "$1" "$3")"
done | tee "$out/bench-fs.txt"

# Cold page cache: every read goes through read_folio and the extent map
# tree. Warm maps versus maps dropped by a full shrink just before.
echo
echo "== emfs reads with a cold page cache: extent maps warm vs right after a full shrink"
printf '%-22s %12s %12s %8s %10s\n' job "warm MiB/s" "shrunk MiB/s" ratio misses | tee -a "$out/bench-fs.txt"
for job in seqread randread; do
	bs=128k
	[ $job = randread ] && bs=4k
	echo 1 >/proc/sys/vm/drop_caches
	rw=read
	[ $job = randread ] && rw=randread
	warm=$(fio_run "$emfs" $job --rw=$rw --bs=$bs)
	echo 1 >/proc/sys/vm/drop_caches
	runs=$(stat_of shrinker_runs)
	echo "0 0 10000000" >"$shrinker/scan"
	while [ "$(stat_of shrinker_runs)" -le "$runs" ]; do sleep 0.1; done
	misses=$(stat_of misses)
	cold=$(fio_run "$emfs" $job --rw=$rw --bs=$bs)
	set -- $warm $cold
	printf '%-22s %12s %12s %8s %10s\n' "$job ($bs)" "$1" "$3" "$(ratio "$3" "$1")" \
		$(($(stat_of misses) - misses))
done | tee -a "$out/bench-fs.txt"
cat "$stats"
umount "$emfs" "$tmp"
