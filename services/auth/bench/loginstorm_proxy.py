#!/usr/bin/env python3
"""The log-in storm through the front door: auth, the tracker, one peer and the proxy,
each its own process of the `weaprous` binary on loopback ports, with the demo users.
N parallel log-ins (right and wrong passwords mixed, at most 3 wrong per name) go to
the proxy as a browser sends them (POST /login on the peer's vhost); the peer relays
each to auth. Prints auth's memory (RSS before, peak, after), log-ins/s, p50/p99, the
statuses, the Retry-After of the refusals, and whether a correct log-in made during
the storm got through within 2 s (following Retry-After).

Usage: python3 services/auth/bench/loginstorm_proxy.py target/release/weaprous [N]
Loopback only; N (default 100) log-ins, each on its own connection."""
import http.client, json, os, secrets, shutil, socket, subprocess, sys, tempfile, time

from storm import storm

binary = os.path.abspath(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../..")
work = tempfile.mkdtemp()
db = os.path.join(work, "database.csv")
shutil.copy(os.path.join(root, "db/database.csv"), db)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


auth_port, tracker_port, peer_port, proxy_port = (free_port() for _ in range(4))
conf = os.path.join(work, "proxy.conf")
with open(conf, "w") as f:
    f.write(f'host "localhost" {{ proxy_pass http://127.0.0.1:{peer_port}; }}\n')
env = dict(os.environ, WEAPROUS_SESSION_SECRET=secrets.token_hex(32), WEAPROUS_CLUSTER_SECRET=secrets.token_hex(32),
           RUST_LOG="warn", NO_COLOR="1", WEAPROUS_ACCESS_LOG="off", AUTH_CONFIG=os.path.join(work, "none.toml"),
           TRACKER_CONFIG=os.path.join(work, "none.toml"), PEER_CONFIG=os.path.join(work, "none.toml"))
common = ["--server-ip", "127.0.0.1"]
www = os.path.join(root, "www")
commands = {
    "auth": ["auth", *common, "--server-port", str(auth_port), "--db", db],
    "tracker": ["tracker", *common, "--server-port", str(tracker_port), "--auth-url", f"http://127.0.0.1:{auth_port}",
                "--data-dir", os.path.join(work, "tracker"), "--www", www],
    "peer": ["peer", *common, "--server-port", str(peer_port), "--tracker-ip", f"127.0.0.1:{tracker_port}",
             "--auth-url", f"http://127.0.0.1:{auth_port}", "--data-dir", os.path.join(work, "peers"), "--www", www],
    "proxy": ["proxy", *common, "--server-port", str(proxy_port), "--config", conf],
}
procs = {}
for name, args in commands.items():
    log = open(os.path.join(work, f"{name}.log"), "w")
    procs[name] = subprocess.Popen([binary, *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)


def stop_all():
    for proc in procs.values():
        proc.terminate()
    for proc in procs.values():
        proc.wait()


def call(method, path, body=None, port=proxy_port, host="localhost"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"host": host, "accept": "application/json"}
    if body is not None:
        headers["content-type"] = "application/json"
    start = time.monotonic()
    conn.request(method, path, body, headers)
    resp = conn.getresponse()
    resp.read()
    took = time.monotonic() - start
    conn.close()
    return resp.status, took, resp.getheader("retry-after")


deadline = time.time() + 60
while True:
    try:
        if call("GET", "/readyz", port=peer_port)[0] == 200 and call("GET", "/login.html")[0] == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        stop_all()
        for name in procs:
            print(open(os.path.join(work, f"{name}.log")).read()[-2000:], file=sys.stderr)
        sys.exit("the system did not come up within 60 s")
    time.sleep(0.2)


def login(user, password):
    return call("POST", "/login", json.dumps({"username": user, "password": password}))


def status_kb(field):
    with open(f"/proc/{procs['auth'].pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])


# Warm-up: one correct log-in and one unknown name.
first = login("user1", "password1")
if first[0] != 200:
    stop_all()
    for name in procs:
        print(name, open(os.path.join(work, f"{name}.log")).read()[-1500:], file=sys.stderr)
    sys.exit(f"a first log-in through the proxy got {first[0]}")
login("ghost", "x")


# Two storms in a row: the second shows whether auth's memory grows further.
rounds = [storm(login, lambda: status_kb("VmRSS"), n) for _ in range(2)]
hwm = status_kb("VmHWM")
stop_all()
shutil.rmtree(work)
print(json.dumps({"n": n, "auth_vmhwm_mib": round(hwm / 1024, 1), "rounds": rounds}))
