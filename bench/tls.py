#!/usr/bin/env python3
"""HTTPS listener bench: plain HTTP vs HTTPS on the same build, and optionally a base build's
plain HTTP, in one run, rounds alternated (docs/tls.md, docs/benchmarks.md).

    bench/tls.py --bin build/release/src/switchyard [--base-bin OTHER] [--rounds 5] [--duration 3]

Each target is the gateway with one `mock_response` deployment and the master key (no
upstream, no Postgres, no Redis: what differs between the targets is only the listener),
pinned to CPU 0 with wrk on CPU 1, non-streamed 1 KB requests over 64 keep-alive
connections (bench/post.lua). HTTPS: a certificate made by the openssl CLI at start
(ECDSA P-256; TLS 1.3, as wrk negotiates). Prints rps and the gateway's CPU per request
(utime + stime of the process) per round and the median per target.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "sk-bench-master"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_ready(port: int, tls_ctx, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                s = tls_ctx.wrap_socket(raw, server_hostname="localhost") if tls_ctx else raw
                s.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"gateway on {port} not ready")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True)
    p.add_argument("--base-bin", default="")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=3)
    p.add_argument("--conns", type=int, default=64)
    a = p.parse_args()
    wrk = shutil.which("wrk")
    if not wrk or not shutil.which("openssl"):
        raise SystemExit("needs wrk and openssl (apt-get install wrk openssl)")
    tmp = tempfile.mkdtemp(prefix="switchyard-tls-bench-")
    try:
        def sh(*args):
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
           "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
        cfg = os.path.join(tmp, "config.yaml")
        with open(cfg, "w") as f:
            f.write("model_list:\n  - model_name: bench-json\n"
                    "    litellm_params: {model: openai/bench, mock_response: \"The answer of the bench.\"}\n")
        tls_ctx = ssl.create_default_context(cafile=cert)
        targets = []
        if a.base_bin:
            targets.append(("base build, plain HTTP", a.base_bin, False))
        targets.append(("this build, plain HTTP", a.bin, False))
        targets.append(("this build, HTTPS", a.bin, True))
        env = dict(os.environ, LITELLM_MASTER_KEY=KEY)
        for k in ("DATABASE_URL", "REDIS_URL", "REDIS_HOST"):
            env.pop(k, None)
        procs = []
        for name, binary, tls in targets:
            port = free_port()
            cmd = ["taskset", "-c", "0", binary, "--config", cfg, "--host", "127.0.0.1", "--port", str(port)]
            if tls:
                cmd += ["--ssl_certfile_path", cert, "--ssl_keyfile_path", key]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                    stderr=open(os.path.join(tmp, f"{len(procs)}.log"), "w"))
            wait_ready(port, tls_ctx if tls else None, proc)
            procs.append((name, proc, port, tls))
        results = {name: [] for name, *_ in procs}
        lua = os.path.join(HERE, "post.lua")
        for rnd in range(a.rounds + 1):  # round 0 warms up
            for name, proc, port, tls in procs:
                url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1/chat/completions"
                t0 = cpu_ticks(proc.pid)
                out = subprocess.run(["taskset", "-c", "1", wrk, "-t", "1", "-c", str(a.conns), "-d",
                                      f"{a.duration}s", "-s", lua, url, "--", "bench-json", "false", "1024", KEY],
                                     capture_output=True, text=True).stdout
                ticks = cpu_ticks(proc.pid) - t0
                m = re.search(r"BENCHJSON (\{.*\})", out)
                if not m:
                    raise SystemExit(f"wrk output not understood:\n{out}")
                d = json.loads(m.group(1))
                n = d["requests"]
                errors = sum(d[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
                if n == 0 or errors:
                    raise SystemExit(f"{name}: {n} requests, {errors} errors:\n{out}")
                rps = n / (d["duration_us"] / 1e6)
                cpu_us = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / n
                if rnd > 0:
                    results[name].append((rps, cpu_us))
                    print(f"round {rnd} {name}: {rps:,.0f} rps, {cpu_us:.1f} µs CPU/request", flush=True)
        print("\nmedians (non-stream 1 KB, 64 connections, mock_response, master key):")
        for name, rs in results.items():
            print(f"  {name}: {statistics.median(r for r, _ in rs):,.0f} rps, "
                  f"{statistics.median(c for _, c in rs):.1f} µs CPU/request")
        for _, proc, _, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for _, proc, _, _ in procs:
            proc.wait(timeout=20)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
