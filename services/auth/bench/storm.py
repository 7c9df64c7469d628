"""The log-in storm shared by loginstorm.py (auth alone) and loginstorm_proxy.py (through
the proxy): n parallel log-ins, right and wrong passwords mixed (at most 3 wrong per
name, under the throttle's free failures), with a correct log-in made during it that
follows Retry-After for up to 2 s; auth's memory sampled throughout."""
import threading
import time


def request(i):
    if i % 10 == 1:
        return f"user{(i // 10) % 4 + 1}", "wrong-password"   # at most 3 per name
    if i % 2 == 1:
        return f"ghost{i}", "wrong-password"                  # unknown: the dummy check
    return f"user{(i // 2) % 4 + 1}", f"password{(i // 2) % 4 + 1}"


def p99_ms(values):
    return round(values[min(len(values) - 1, int(round(0.99 * len(values))) - 1)] * 1000) if values else None


def storm(login, rss_kb, n):
    """`login(user, password)` -> (status, seconds, retry_after); `rss_kb()` -> auth's RSS.
    Returns the storm's figures."""
    rss_before = rss_kb()
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
            peak[0] = max(peak[0], rss_kb() or 0)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    barrier.wait()
    start = time.monotonic()
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
    stop.set()
    sampler.join()
    lat = sorted(r[1] for r in results)
    codes = {}
    for r in results:
        codes[r[0]] = codes.get(r[0], 0) + 1
    return {
        "codes": codes, "rss_before_mib": round(rss_before / 1024, 1),
        "rss_peak_sampled_mib": round(peak[0] / 1024, 1), "rss_after_mib": round(rss_kb() / 1024, 1),
        "wall_s": round(wall, 2), "logins_per_s": round(n / wall, 1), "p50_ms": round(lat[len(lat) // 2] * 1000),
        "p99_ms": p99_ms(lat), "max_ms": round(lat[-1] * 1000),
        "p99_answered_ms": p99_ms(sorted(r[1] for r in results if r[0] != 503)),
        "p99_of_503_ms": p99_ms(sorted(r[1] for r in results if r[0] == 503)),
        "retry_after_on_503": sorted({r[2] for r in results if r[0] == 503}, key=str),
        "probe_statuses": probe, "probe_ok_within_2s": probe[-1] == 200 and probe_took <= 2,
        "probe_took_ms": round(probe_took * 1000),
    }
