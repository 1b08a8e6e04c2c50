# The disk's own sync latency at a paced rate, as PostgreSQL's WAL sees it: 8 kB written and
# fdatasync'ed `rate` times a second for `secs` seconds into the file `path` (put it on
# the filesystem of PostgreSQL's data directory). Prints p50, p99, p99.9, max and how many took
# over 5 ms. Usage: python3 bench/scripts/fsync_probe.py [rate] [secs] [path]
import os, time, sys
rate = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
secs = int(sys.argv[2]) if len(sys.argv) > 2 else 15
path = sys.argv[3] if len(sys.argv) > 3 else '/var/lib/postgresql/fsync_probe.tmp'
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
buf = b'x' * 8192
os.write(fd, b'\0' * (16 << 20)); os.fsync(fd); os.lseek(fd, 0, 0)
lat = []
start = time.perf_counter(); n = rate * secs
for i in range(n):
    due = start + i / rate
    now = time.perf_counter()
    if now < due: time.sleep(due - now)
    t0 = time.perf_counter()
    if os.lseek(fd, 0, 1) >= (16 << 20): os.lseek(fd, 0, 0)
    os.write(fd, buf); os.fdatasync(fd)
    lat.append(time.perf_counter() - t0)
os.close(fd); os.unlink(path)
lat.sort()
q = lambda p: lat[min(len(lat)-1, int(p * len(lat)))] * 1000
print(f"n={len(lat)} p50={q(.5):.3f}ms p99={q(.99):.3f}ms p999={q(.999):.3f}ms max={lat[-1]*1000:.1f}ms over5ms={sum(1 for x in lat if x > .005)}")
