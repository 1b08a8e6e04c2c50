# The disk's own sync latency at a paced rate, as PostgreSQL's WAL sees it: 8 kB written and
# fdatasync'ed for requests arriving `rate` times a second for `secs` seconds, into the file
# `path` (put it on the filesystem of PostgreSQL's data directory).
#
# Two lines:
# - `sync`: each sync's own time (p50, p99, p99.9, max, how many took over 5 ms);
# - `ideal intake`: the answer times of an intake with no CPU cost that group-commits, as
#   webhook-api's does: every request that has arrived when a sync starts is answered when it
#   ends, so a request's answer time is the sync's end minus its arrival. Printed for the whole
#   run and per 15 s window (a paced phase of `cargo xtask bench webhook`): no PostgreSQL intake
#   on this disk can answer faster than this.
#
# Usage: python3 bench/scripts/fsync_probe.py [rate] [secs] [path]
import os, time, sys
rate = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
secs = int(sys.argv[2]) if len(sys.argv) > 2 else 15
path = sys.argv[3] if len(sys.argv) > 3 else '/var/lib/postgresql/fsync_probe.tmp'
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
buf = b'x' * 8192
os.write(fd, b'\0' * (16 << 20)); os.fsync(fd); os.lseek(fd, 0, 0)
syncs, answers = [], []  # answers: (arrival index, answer time)
start = time.perf_counter(); n = rate * secs; i = 0
while i < n:
    due = start + i / rate
    now = time.perf_counter()
    if now < due: time.sleep(due - now)
    t0 = time.perf_counter()
    arrived = min(n, int((t0 - start) * rate) + 1)  # requests 0..arrived-1 have arrived
    if os.lseek(fd, 0, 1) >= (16 << 20): os.lseek(fd, 0, 0)
    os.write(fd, buf); os.fdatasync(fd)
    t1 = time.perf_counter()
    syncs.append(t1 - t0)
    answers.extend((j, t1 - (start + j / rate)) for j in range(i, arrived))
    i = arrived
os.close(fd); os.unlink(path)
def summary(lat):
    lat = sorted(lat)
    q = lambda p: lat[min(len(lat)-1, int(p * len(lat)))] * 1000
    return f"n={len(lat)} p50={q(.5):.3f}ms p99={q(.99):.3f}ms p999={q(.999):.3f}ms max={lat[-1]*1000:.1f}ms over5ms={sum(1 for x in lat if x > .005)}"
print("sync:", summary(syncs))
print("ideal intake:", summary([a for _, a in answers]))
window = 15 * rate
for w in range(0, n, window):
    part = [a for j, a in answers if w <= j < w + window]
    if part: print(f"  ideal intake, seconds {w // rate}-{min(n, w + window) // rate}:", summary(part))
