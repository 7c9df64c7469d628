"""Memory of the proxy per idle event stream.

Usage: python3 bench/proxy_streams.py target/release/proxy   (STREAMS=1000 by default)

Starts a minimal event-stream backend on 127.0.0.1:19500 and the proxy on :19480 in
front of it, opens STREAMS streams through the proxy (each gets one event, then
idles), and prints the proxy's RSS growth per stream.
"""
import asyncio, os, subprocess, sys, time

N = int(os.environ.get("STREAMS", "1000"))
PROXY = sys.argv[1]

async def backend(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"d\r\ndata: hello\n\n\r\n")
        await writer.drain()
        await reader.read()  # idle until the proxy closes
    except (Exception, asyncio.CancelledError):
        pass

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

async def main():
    server = await asyncio.start_server(backend, "127.0.0.1", 19500, backlog=4096)
    conf = "/tmp/sse/proxy.conf"
    open(conf, "w").write('host "app.test" { proxy_pass http://127.0.0.1:19500; }\n')
    proc = subprocess.Popen([PROXY, "--config", conf, "--server-ip", "127.0.0.1", "--server-port", "19480"],
                            env={**os.environ, "RUST_LOG": "warn", "PROXY_WORKERS": "2"}, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", 19480); w.close(); break
        except OSError:
            await asyncio.sleep(0.05)
    # Warm up allocator and runtime with a few streams, then measure.
    async def stream():
        r, w = await asyncio.open_connection("127.0.0.1", 19480)
        w.write(b"GET /events HTTP/1.1\r\nHost: app.test\r\nAccept: text/event-stream\r\n\r\n")
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        assert b"200" in head, head
        await r.readuntil(b"data: hello\n\n")
        return r, w
    warm = [await stream() for _ in range(20)]
    time.sleep(0.5)
    before = rss_kb(proc.pid)
    held = []
    for _ in range(N // 100):
        held += await asyncio.gather(*[stream() for _ in range(100)])
    time.sleep(1.0)
    after = rss_kb(proc.pid)
    print(f"streams={N} rss_before_kb={before} rss_after_kb={after} bytes_per_stream={(after - before) * 1024 / N:.0f}")
    for _, w in held + warm:
        w.close()
    proc.terminate()
    proc.wait()
    server.close()

asyncio.run(main())
