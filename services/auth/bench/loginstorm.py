#!/usr/bin/env python3
"""Starts an auth binary on 127.0.0.1:0 with the demo users, fires N parallel log-ins
(mixed right and wrong passwords), and prints auth's memory, throughput, p99, 503s and
whether a correct log-in during the storm got through within 2 s (following Retry-After).
Usage: python3 services/auth/bench/loginstorm.py target/release/auth [N]
Loopback only; N (default 100) log-ins, each on its own connection."""
import http.client, json, os, re, secrets, shutil, subprocess, sys, tempfile, threading, time

from storm import storm

binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
work = tempfile.mkdtemp()
db = os.path.join(work, "database.csv")
shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../db/database.csv"), db)
env = dict(os.environ, AUTH_CONFIG=os.path.join(work, "none.toml"), RUST_LOG="warn,auth=info", NO_COLOR="1",
           WEAPROUS_SESSION_SECRET=secrets.token_hex(32), WEAPROUS_CLUSTER_SECRET=secrets.token_hex(32))
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

# Warm-up: one correct log-in (the dummy hash, the connection path).
assert login("user1", "password1")[0] == 200
login("ghost", "x")
figures = storm(login, lambda: status_kb("VmRSS"), n)
hwm = status_kb("VmHWM")
proc.terminate(); proc.wait(); shutil.rmtree(work)
print(json.dumps({"n": n, "vmhwm_mib": round(hwm / 1024, 1), **figures}))
