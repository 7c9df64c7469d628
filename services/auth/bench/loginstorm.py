#!/usr/bin/env python3
"""Starts an auth binary on 127.0.0.1:0 with the demo users, fires N parallel log-ins
(mixed right and wrong passwords), and prints auth's memory, throughput, p99, 503s and
whether a correct log-in during the storm got through within 2 s (following Retry-After).
Usage: python3 services/auth/bench/loginstorm.py target/release/auth [N]
Loopback only; N (default 100) log-ins, each on its own connection."""
import http.client, json, os, re, shutil, subprocess, sys, tempfile, threading, time

binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
work = tempfile.mkdtemp()
db = os.path.join(work, "database.csv")
shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../db/database.csv"), db)
env = dict(os.environ, AUTH_CONFIG=os.path.join(work, "none.toml"), RUST_LOG="warn,auth=info", NO_COLOR="1")
proc = subprocess.Popen([binary, "--server-port", "0", "--db", db], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, env=env, text=True)
port = None
deadline = time.time() + 30
for line in proc.stdout:
    m = re.search(r"addr[=\": ]+127\.0\.0\.1:(\d+)", line)
    if m:
        port = int(m.group(1))
        break
    if time.time() > deadline:
        break
assert port, "auth did not say where it listens"
threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()

def status_kb(field):
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])

def login(user, password):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps({"username": user, "password": password})
    start = time.monotonic()
    conn.request("POST", "/login", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    took = time.monotonic() - start
    retry = resp.getheader("retry-after")
    conn.close()
    return resp.status, took, retry

def request(i):
    if i % 10 == 1:
        return f"user{(i // 10) % 4 + 1}", "wrong-password"   # at most 3 per name: under the throttle
    if i % 2 == 1:
        return f"ghost{i}", "wrong-password"                  # unknown: the dummy check
    return f"user{(i // 2) % 4 + 1}", f"password{(i // 2) % 4 + 1}"

# Warm-up: one correct log-in (the dummy hash, the connection path).
assert login("user1", "password1")[0] == 200
login("ghost", "x")
rss_before = status_kb("VmRSS")
results = [None] * n
barrier = threading.Barrier(n + 1)
def worker(i):
    user, password = request(i)
    barrier.wait()
    results[i] = login(user, password)
threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
peak = [0]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], status_kb("VmRSS") or 0)
        time.sleep(0.005)
sampler = threading.Thread(target=sample); sampler.start()
barrier.wait()
start = time.monotonic()
# A correct log-in while the storm is on, retrying as Retry-After says, within 2 s.
time.sleep(0.05)
probe_start = time.monotonic()
probe = []
while time.monotonic() - probe_start < 2:
    status, took, retry = login("user2", "password2")
    probe.append(status)
    if status == 200 or retry is None:
        break
    time.sleep(min(float(retry), max(0, 2 - (time.monotonic() - probe_start))))
probe_took = time.monotonic() - probe_start
for t in threads:
    t.join()
wall = time.monotonic() - start
time.sleep(2)  # let the allocator settle before reading "after"
stop.set(); sampler.join()
rss_after = status_kb("VmRSS")
hwm = status_kb("VmHWM")
proc.terminate(); proc.wait(); shutil.rmtree(work)
lat = sorted(r[1] for r in results)
codes = {}
for r in results:
    codes[r[0]] = codes.get(r[0], 0) + 1
p99 = lat[min(len(lat) - 1, int(round(0.99 * len(lat))) - 1)]
print(json.dumps({
    "n": n, "codes": codes, "rss_before_mib": round(rss_before / 1024, 1),
    "rss_peak_sampled_mib": round(peak[0] / 1024, 1), "vmhwm_mib": round(hwm / 1024, 1),
    "rss_after_mib": round(rss_after / 1024, 1), "wall_s": round(wall, 2),
    "logins_per_s": round(n / wall, 1), "p50_ms": round(lat[len(lat) // 2] * 1000),
    "p99_ms": round(p99 * 1000),
    "answered_per_s": round(sum(1 for r in results if r[0] != 503) / wall, 1),
    "p99_answered_ms": (lambda a: round(a[min(len(a) - 1, int(round(0.99 * len(a))) - 1)] * 1000) if a else None)(
        sorted(r[1] for r in results if r[0] != 503)), "max_ms": round(lat[-1] * 1000),
    "retry_after_on_503": sorted({r[2] for r in results if r[0] == 503}),
    "probe_statuses": probe, "probe_ok_within_2s": probe[-1] == 200 and probe_took <= 2,
    "probe_took_ms": round(probe_took * 1000),
}))
