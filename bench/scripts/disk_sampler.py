# What the disk and the kernel's write-back do while a benchmark runs, every 250 ms, one line
# per sample: writes completed, MB written, milliseconds spent writing (summed over the writes in
# flight: a stall shows as many milliseconds for few writes), writes in flight, the weighted
# queue time, and the page cache's dirty and under-write-back megabytes (/proc/meminfo).
# Match its UTC times against the benchmark's "answers over 5 ms per second" lines: a stall with
# little dirty data and no write-back is the device's own latency, not our writes (ADR 0022).
#
# Usage: python3 bench/scripts/disk_sampler.py OUT SECONDS [DEVICE]   (device default vda)
import sys, time
out = open(sys.argv[1], 'w')
end = time.time() + float(sys.argv[2])
device = sys.argv[3] if len(sys.argv) > 3 else 'vda'
def disk():
    for line in open('/proc/diskstats'):
        f = line.split()
        if f[2] == device:
            # writes completed, sectors written, ms writing, in flight, weighted ms in queue
            return int(f[7]), int(f[9]), int(f[10]), int(f[11]), int(f[13])
    sys.exit(f'no device {device} in /proc/diskstats')
def memory():
    d = {}
    for line in open('/proc/meminfo'):
        k, v = line.split(':')
        if k in ('Dirty', 'Writeback'):
            d[k] = int(v.split()[0]) // 1024
    return d['Dirty'], d['Writeback']
prev = disk()
while time.time() < end:
    time.sleep(0.25)
    cur = disk()
    dirty, writeback = memory()
    now = time.time()
    stamp = time.strftime('%H:%M:%S', time.gmtime(now)) + ('%.2f' % (now % 1))[1:]
    out.write(f"{stamp} w={cur[0]-prev[0]} MB={(cur[1]-prev[1])*512/1e6:.1f} wms={cur[2]-prev[2]} "
              f"infl={cur[3]} wq={cur[4]-prev[4]} dirtyMB={dirty} wbMB={writeback}\n")
    out.flush()
    prev = cur
