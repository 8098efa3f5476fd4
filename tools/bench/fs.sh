#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the filesystem benchmark (part of 'make bench', with the
# module loaded): fio 4k random read, sequential read and sequential write
# on emfs and on tmpfs, side by side in one run, printed as ratios; emfs's
# O_DIRECT 4k random reads and writes against the buffered ones of both;
# then
# emfs reads with a cold page cache, right after a full shrink of the
# extent map cache versus with the maps warm. Every figure is the median
# of $reps runs, the two sides alternating: under emulation one run of a
# job can be twice as fast as the next.
#
#   emfs_bench_fs_mb    file size in MiB (default 256)
#   emfs_bench_fs_reps  runs of each job (default 5)
#   emfs_bench_fs_cold  the cold-cache jobs (default "seqread randread")
#   emfs_bench_fs_settle  seconds to let a cache drop settle (default 1)
#   emfs_bench_fs_direct_secs  seconds of each O_DIRECT job (default 5)

set -eu
mb=${emfs_bench_fs_mb:-256}
reps=${emfs_bench_fs_reps:-5}
cold_jobs=${emfs_bench_fs_cold:-seqread randread}
settle=${emfs_bench_fs_settle:-1}
direct_secs=${emfs_bench_fs_direct_secs:-5}
out=${EMFS_OUT:-/tmp}
emfs=/tmp/bench-emfs
tmp=/tmp/bench-tmpfs
raw=/tmp/bench-fs.raw
mkdir -p "$emfs" "$tmp"
mount -t emfs -o size=$((mb * 2 + 64))M none "$emfs"
mount -t tmpfs -o size=$((mb * 2 + 64))M none "$tmp"
# The random writes and O_DIRECT on mounts of their own, with a quarter of
# the file size (the guest's memory holds all four): copy on write of
# random blocks fragments a disk's free space, and with it the files
# written after.
rmb=$(((mb + 3) / 4))
emfs_r=/tmp/bench-emfs-rand
tmp_r=/tmp/bench-tmpfs-rand
mkdir -p "$emfs_r" "$tmp_r"
mount -t emfs -o size=$((rmb * 2 + 64))M none "$emfs_r"
mount -t tmpfs -o size=$((rmb * 2 + 64))M none "$tmp_r"
id=$(dmesg | sed -n 's/.*emfs: mounted: owner \([0-9]*\),.*/\1/p' | tail -2 | head -1)
stats=/proc/fs/emfs/$id/stats
shrinker=$(ls -d /sys/kernel/debug/shrinker/emfs-extent-map:"$id"-* | head -1)
stat_of() { awk -v k="$1" '$1 == k { print $2 }' "$stats"; }
: >"$raw"

# fio_run PREFIX DIR JOB...: one fio running the jobs (each "--name=NAME
# options...") one after the other (stonewall); appends "PREFIX.NAME
# <MiB/s>" to $raw for each. One fio for several jobs: under emulation a
# program's start costs more than a small job.
fio_run() {
	local prefix=$1 dir=$2
	shift 2
	fio --filename="$dir/bench" --size="${fsize:-$mb}M" --ioengine=psync \
		--output-format=json "$@" >/tmp/fio.json
	python3 -S - "$prefix" >>"$raw" <<'PY'
import json, sys
for j in json.load(open("/tmp/fio.json"))["jobs"]:
    d = j["write"] if j["write"]["io_bytes"] else j["read"]
    print(f'{sys.argv[1]}.{j["jobname"]}', f'{d["bw"] / 1024:.1f}')
PY
}

# The page cache is warm: fio's default drops the file's page cache before
# a job, which tmpfs ignores (the page cache is its storage), so it is
# kept on both sides; the cold case is the next table. The first write
# creates the file, the next ones overwrite it (copy on write on emfs).
for ((i = 0; i < reps; i++)); do
	for fs in emfs tmpfs; do
		dir=$emfs rdir=$emfs_r
		[ $fs = tmpfs ] && dir=$tmp rdir=$tmp_r
		fio_run "$fs" "$dir" --invalidate=0 \
			--name=seqwrite --rw=write --bs=128k --stonewall \
			--name=seqwrite_fsync --rw=write --bs=128k --end_fsync=1 --stonewall \
			--name=seqread --rw=read --bs=128k --stonewall \
			--name=randread --rw=randread --bs=4k --stonewall
		fsize=$rmb fio_run "$fs" "$rdir" --invalidate=0 --name=randwrite --rw=randwrite --bs=4k
	done
	# O_DIRECT on emfs, on the file the random writes made: every request
	# to the disk through the extent maps, writes copy on write; a fixed
	# time each, as they are slower.
	fsize=$rmb fio_run direct "$emfs_r" --direct=1 --runtime="$direct_secs" --time_based \
		--name=randread --rw=randread --bs=4k --stonewall \
		--name=randwrite --rw=randwrite --bs=4k --stonewall
done

# Cold page cache: every read goes through read_folio and the extent map
# tree, with the maps warm, or dropped by a full shrink just before. The
# two alternate which goes first.
cold_run() {
	local state=$1 job=$2 rw=read bs=128k before
	[ "$job" = randread ] && rw=randread bs=4k
	echo 1 >/proc/sys/vm/drop_caches
	if [ "$state" = shrunk ]; then
		# Ask again until nothing evictable is left (a run may stop
		# early; a request while one is queued is dropped).
		for ((n = 0; n < 3000; n++)); do
			[ "$(stat_of maps_evictable)" -gt 0 ] || break
			echo "0 0 10000000" >"$shrinker/scan"
			sleep 0.1
		done
	fi
	sleep "$settle"
	before=$(stat_of misses)
	fio_run "$state" "$emfs" --name="$job" --rw=$rw --bs=$bs
	echo "misses.$state.$job $(($(stat_of misses) - before))" >>"$raw"
}
for ((i = 0; i < reps; i++)); do
	for job in $cold_jobs; do
		if ((i % 2)); then
			cold_run shrunk $job
			cold_run warm $job
		else
			cold_run warm $job
			cold_run shrunk $job
		fi
	done
done

python3 -S - "$raw" "$mb" "$reps" <<'PY' | tee "$out/bench-fs.txt"
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    key, value = line.split()
    runs.setdefault(key, []).append(float(value))
med = {k: statistics.median(v) for k, v in runs.items()}
print(f"== filesystem benchmark: fio, {sys.argv[2]} MiB file, psync, median of {sys.argv[3]} runs")
print("   reads from a warm page cache; writes buffered, as fio runs them by default,")
print("   and with end_fsync=1, which on emfs includes writing it all back")
print(f"{'job':<22} {'emfs MiB/s':>12} {'tmpfs MiB/s':>12} {'ratio':>8}")
for job, label in (("randread", "4k random read"), ("seqread", "sequential read"),
                   ("seqwrite", "sequential write"),
                   ("seqwrite_fsync", "seq. write + fsync")):
    e, t = med[f"emfs.{job}"], med[f"tmpfs.{job}"]
    print(f"{label:<22} {e:>12.1f} {t:>12.1f} {e / t:>8.2f}")
print()
print(f"== emfs O_DIRECT (4k, psync) against buffered I/O from a warm page cache,")
print(f"   on a {(int(sys.argv[2]) + 3) // 4} MiB file on mounts of their own; random reads as above")
print(f"{'job':<16} {'O_DIRECT':>9} {'emfs buf.':>10} {'tmpfs buf.':>11} {'/emfs':>6} {'/tmpfs':>7}")
for job, label in (("randread", "O_DIRECT read"), ("randwrite", "O_DIRECT write")):
    d, e, t = med[f"direct.{job}"], med[f"emfs.{job}"], med[f"tmpfs.{job}"]
    print(f"{label:<16} {d:>9.1f} {e:>10.1f} {t:>11.1f} {d / e:>6.2f} {d / t:>7.2f}")
print("   (MiB/s; buffered writes only fill the page cache)")
print()
print("== emfs reads with a cold page cache: extent maps warm vs right after a full shrink")
print(f"{'job':<16} {'warm MiB/s':>11} {'misses':>7} {'shrunk MiB/s':>13} {'misses':>7} {'ratio':>6}")
for job, label in (("seqread", "seqread (128k)"), ("randread", "randread (4k)")):
    if f"warm.{job}" not in med:
        continue
    w, s = med[f"warm.{job}"], med[f"shrunk.{job}"]
    wm, sm = med[f"misses.warm.{job}"], med[f"misses.shrunk.{job}"]
    print(f"{label:<16} {w:>11.1f} {wm:>7.0f} {s:>13.1f} {sm:>7.0f} {s / w:>6.2f}")
PY
umount "$emfs" "$tmp" "$emfs_r" "$tmp_r"
