#!/usr/bin/env python3
"""Switchyard benchmark driver. Run it through ./bench/run.sh (which installs nginx and wrk
and builds the gateway); see bench/README.md for what is measured and how.

Everything listens on 127.0.0.1 on ports picked at run time; every load is bounded in
time; every process started here is stopped on exit (and run.sh's EXIT trap stops any
that a crash left behind, from the pid list in the temp dir, and the Postgres and Redis
of scripts/services.sh with `services.sh stop`).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import base64
import http.client
import http.server
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
LUA = os.path.join(BENCH_DIR, "post.lua")
LUA_UNIQUE = os.path.join(BENCH_DIR, "post_unique.lua")  # a body of its own per request
LUA_MESSAGES = os.path.join(BENCH_DIR, "post_messages.lua")  # Anthropic's /v1/messages
SERVICES_SH = os.path.join(ROOT, "scripts", "services.sh")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MASTER_KEY = "sk-bench-master-4f6d1c0a9e"
UPSTREAM_KEY = "sk-bench-upstream"
PATH = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"

NAN = float("nan")
TARGET_NAMES = ["direct", "nginx", "switchyard", "switchyard-2w", "switchyard-2w-base", "switchyard-mk", "switchyard-base", "switchyard-nospend", "switchyard-nospendlogs",
                "switchyard-nometrics", "switchyard-cache-mem", "switchyard-cache-redis", "switchyard-cache-redis-spread",
                "switchyard-unique",
                "switchyard-cache-miss", "switchyard-cache-miss-local", "switchyard-limits", "switchyard-limits-nolease",
                "switchyard-messages", "switchyard-callback", "switchyard-callback-down",
                "switchyard-jwt"]  # see main()
DEFAULT_TARGETS = ["direct", "nginx", "switchyard"]
CACHED_KEYS = 100_000     # keys used once by a fresh gateway for "RSS with 100,000 keys cached"
SIZES = {"1k": 1024, "100k": 100 * 1024, "1m": 1024 * 1024}
SIZE_LABEL = {"1k": "1 KB", "100k": "100 KB", "1m": "1 MB"}
MODE_LABEL = {"json": "non-stream", "sse": "stream"}

# Acceptance thresholds of the performance goals (docs/benchmarks.md).
TH_RPS_RATIO = 0.8        # Switchyard rps / nginx-hop rps, non-stream, 64 conn, 1 KB: >=
TH_CPU_RATIO = 1.5        # Switchyard CPU/req / nginx-hop's, same scenario: <=
TH_ADDED_P50_US = 60      # 1 connection, vs direct: <=
TH_ADDED_P99_US = 250
TH_TTFB_ADDED_US = 60     # streaming time to first byte, 1 connection, vs direct: <=
TH_CPU_RATIO_1M = 2.0     # 1 MB body, CPU/req vs nginx hop: <=
TH_RSS_IDLE_MB = 40
TH_RSS_LOAD_MB = 120
TH_READY_MS = 100
NOISY_OTHER_PCT = 10      # a run during which other processes used more of a core than this is flagged


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- fixed bodies

def chat_json_body() -> str:
    return json.dumps({
        "id": "chatcmpl-bench0000000000000000000001",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "system_fingerprint": "fp_bench",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant",
                        "content": "Hello! This is a fixed answer from the fake upstream of the bench."},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 24, "completion_tokens": 14, "total_tokens": 38},
    }, separators=(",", ":"))


def chat_sse_body(usage_null: bool = False) -> str:
    """20 SSE events: a role chunk, 16 content chunks, a finish chunk, a usage chunk, [DONE].
    With `usage_null`, every chunk but the last carries `"usage":null`, as OpenAI's do when
    the request asks for `stream_options.include_usage` (the gateway always asks)."""
    base = {"id": "chatcmpl-bench0000000000000000000002", "object": "chat.completion.chunk",
            "created": 1700000000, "model": "bench-model", "system_fingerprint": "fp_bench"}
    if usage_null:
        base["usage"] = None
    # No quote, `$` or backslash in the bodies: they sit in an nginx '...' string.
    words = ["Hello", "!", " This", " is", " a", " fixed", " answer", " streamed", " by", " the",
             " fake", " upstream", " of", " the", " bench", "."]
    events = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                   "logprobs": None, "finish_reason": None}])]
    for w in words:
        events.append(dict(base, choices=[{"index": 0, "delta": {"content": w},
                                           "logprobs": None, "finish_reason": None}]))
    events.append(dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None,
                                       "finish_reason": "stop"}]))
    events.append(dict(base, choices=[],
                       usage={"prompt_tokens": 24, "completion_tokens": 16, "total_tokens": 40}))
    out = "".join("data: " + json.dumps(e, separators=(",", ":")) + "\n\n" for e in events)
    out += "data: [DONE]\n\n"
    assert out.count("data: ") == 20
    return out


def messages_json_body() -> str:
    """The Anthropic answer of the upstream's /v1/messages (the same text and usage as the chat one)."""
    return json.dumps({
        "id": "msg_bench000000000000000001", "type": "message", "role": "assistant", "model": "bench-model",
        "content": [{"type": "text",
                     "text": "Hello! This is a fixed answer from the fake upstream of the bench."}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 24, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": 14},
    }, separators=(",", ":"))


def messages_sse_body() -> str:
    """Anthropic's event stream for the same answer as chat_sse_body(): 16 text deltas, 22 events."""
    words = ["Hello", "!", " This", " is", " a", " fixed", " answer", " streamed", " by", " the",
             " fake", " upstream", " of", " the", " bench", "."]
    ev = lambda t, d: f"event: {t}\ndata: " + json.dumps(dict(type=t, **d), separators=(",", ":")) + "\n\n"
    out = ev("message_start", {"message": {
        "id": "msg_bench000000000000000002", "type": "message", "role": "assistant", "model": "bench-model",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 24, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": 1}}})
    out += ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    out += ev("ping", {})
    for w in words:
        out += ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}})
    out += ev("content_block_stop", {"index": 0})
    out += ev("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                "usage": {"output_tokens": 16}})
    out += ev("message_stop", {})
    return out


def gemini_json_body() -> str:
    """Gemini's generateContent answer (the same text and usage as the chat one), as Google
    writes it (`": "` between a key and its value)."""
    return json.dumps({
        "candidates": [{"content": {"parts": [{"text": "Hello! This is a fixed answer from the fake upstream of "
                                                        "the bench."}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 24, "candidatesTokenCount": 14, "totalTokenCount": 38,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 24}]},
        "modelVersion": "bench-model", "responseId": "bench0000000000000000000001",
    }, separators=(",", ": "))


def gemini_sse_body() -> str:
    """Gemini's streamGenerateContent?alt=sse answer for the same text: 20 events, each one
    candidate with a text part, usageMetadata, modelVersion and responseId (as Google sends
    them); the last with its finishReason and the final counts."""
    words = ["Hello", "!", " This", " is", " a", " fixed", " answer", " stream", "ed", " by", " the",
             " fake", " up", "stream", " of", " the", " ben", "ch", " here", "."]
    out = ""
    for i, w in enumerate(words):
        cand = {"content": {"parts": [{"text": w}], "role": "model"}, "index": 0}
        usage = {"promptTokenCount": 24, "totalTokenCount": 24,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 24}]}
        if i == len(words) - 1:
            cand["finishReason"] = "STOP"
            usage = {"promptTokenCount": 24, "candidatesTokenCount": 20, "totalTokenCount": 44,
                     "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 24}],
                     "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 20}]}
        event = {"candidates": [cand], "usageMetadata": usage, "modelVersion": "bench-model",
                 "responseId": "bench0000000000000000000002"}
        out += "data: " + json.dumps(event, separators=(",", ": ")) + "\r\n\r\n"
    assert out.count("data: ") == 20
    return out


def ollama_json_body() -> str:
    """Ollama's /api/chat answer for the same text."""
    return json.dumps({
        "model": "bench-model", "created_at": "2026-12-07T19:00:00.000000000Z",
        "message": {"role": "assistant", "content": "Hello! This is a fixed answer from the fake upstream of the bench."},
        "done_reason": "stop", "done": True, "total_duration": 4883583458, "load_duration": 1334875,
        "prompt_eval_count": 24, "prompt_eval_duration": 342546000, "eval_count": 16, "eval_duration": 4535599000,
    }, separators=(",", ":"))


def ollama_ndjson_body() -> str:
    """Ollama's /api/chat stream (NDJSON) for the same text: 16 lines of text and the done line
    with the counts, as Ollama writes them."""
    words = ["Hello", "!", " This", " is", " a", " fixed", " answer", " streamed", " by", " the",
             " fake", " upstream", " of", " the", " bench", "."]
    line = lambda d: json.dumps(dict({"model": "bench-model", "created_at": "2026-12-07T19:00:00.000000000Z"}, **d),
                                separators=(",", ":")) + "\n"
    out = "".join(line({"message": {"role": "assistant", "content": w}, "done": False}) for w in words)
    out += line({"message": {"role": "assistant", "content": ""}, "done_reason": "stop", "done": True,
                 "total_duration": 4883583458, "load_duration": 1334875, "prompt_eval_count": 24,
                 "prompt_eval_duration": 342546000, "eval_count": 16, "eval_duration": 4535599000})
    return out


def bedrock_json_body() -> str:
    """Bedrock's Converse answer (POST /model/{id}/converse) for the same text and usage."""
    return json.dumps({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Hello! This is a fixed answer from the fake upstream of the bench."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 24, "outputTokens": 20, "totalTokens": 44},
        "metrics": {"latencyMs": 312},
    }, separators=(",", ":"))


def eventstream_message(event_type: str, payload: bytes) -> bytes:
    """One AWS event-stream message (application/vnd.amazon.eventstream): the prelude (total
    length, headers length, the prelude's CRC32), string headers as Bedrock sends them, the
    payload and the whole message's CRC32."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        headers += struct.pack(">B", len(name)) + name.encode() + struct.pack(">BH", 7, len(value)) + value.encode()
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def bedrock_eventstream_body() -> bytes:
    """Bedrock's converse-stream answer for the same text: messageStart, 20 contentBlockDelta
    text events, contentBlockStop, messageStop and metadata (usage, metrics), each payload with
    the `p` padding member of varying length Bedrock adds to every event."""
    words = ["Hello", "!", " This", " is", " a", " fixed", " answer", " stream", "ed", " by", " the",
             " fake", " up", "stream", " of", " the", " ben", "ch", " here", "."]
    pad = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    events = [("messageStart", {"role": "assistant"})]
    events += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}) for w in words]
    events += [("contentBlockStop", {"contentBlockIndex": 0}), ("messageStop", {"stopReason": "end_turn"}),
               ("metadata", {"usage": {"inputTokens": 24, "outputTokens": 20, "totalTokens": 44},
                             "metrics": {"latencyMs": 312}})]
    out = b""
    for i, (event_type, data) in enumerate(events):
        data = dict(data, p=pad[:(7 * i) % len(pad) + 1])
        out += eventstream_message(event_type, json.dumps(data, separators=(",", ":")).encode())
    return out


def bedrock_locations(payload: str | None = None, stream_file: str | None = None) -> str:
    """nginx locations for Bedrock's /model/{id}/converse (`payload`, JSON) or
    /converse-stream (`stream_file`: the binary event stream, which an nginx string cannot
    hold). nginx serves a file only to GET; the POST's 405 is turned into the file's 200 by
    an internal redirect, which makes the request a GET."""
    if stream_file is None:
        return ("    location /model/ {\n      default_type application/json;\n" + nginx_return(payload) +
                "\n    }\n")
    return ("    location /model/ {\n      error_page 405 =200 /bedrock-converse-stream;\n      return 405;\n    }\n"
            "    location = /bedrock-converse-stream {\n      internal;\n"
            "      default_type application/vnd.amazon.eventstream;\n"
            f"      alias {stream_file};\n    }}\n")


def cohere_json_body() -> str:
    """Cohere's v2 chat answer (POST /v2/chat) for the same text and usage."""
    return json.dumps({
        "id": "bench0000000000000000000003", "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [
            {"type": "text", "text": "Hello! This is a fixed answer from the fake upstream of the bench."}]},
        "usage": {"billed_units": {"input_tokens": 24, "output_tokens": 20},
                  "tokens": {"input_tokens": 24, "output_tokens": 20}},
    }, separators=(",", ":"))


def cohere_sse_body() -> str:
    """Cohere's v2 chat stream for the same text, as Cohere writes it: message-start,
    content-start, 20 content-delta events, content-end, message-end with the finish reason
    and usage (billed_units and tokens); each event with its `event:` line and `type`."""
    words = ["Hello", "!", " This", " is", " a", " fixed", " answer", " stream", "ed", " by", " the",
             " fake", " up", "stream", " of", " the", " ben", "ch", " here", "."]
    ev = lambda t, d: f"event: {t}\ndata: " + json.dumps(dict(type=t, **d), separators=(",", ":")) + "\n\n"
    out = ev("message-start", {"id": "bench0000000000000000000004", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})
    out += ev("content-start", {"index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}})
    for w in words:
        out += ev("content-delta", {"index": 0, "delta": {"message": {"content": {"text": w}}}})
    out += ev("content-end", {"index": 0})
    out += ev("message-end", {"delta": {"finish_reason": "COMPLETE", "usage": {
        "billed_units": {"input_tokens": 24, "output_tokens": 20}, "tokens": {"input_tokens": 24, "output_tokens": 20}}}})
    assert out.count("data: ") == 24
    return out


def messages_request_body(model: str, stream: bool, size: int) -> bytes:
    """The same body as bench/post_messages.lua builds (kept identical on purpose)."""
    prefix = ('{"model":"' + model + '","stream":' + ("true" if stream else "false") +
              ',"max_tokens":16,"metadata":{"user_id":"bench"},"system":"You are a helpful assistant.",'
              '"messages":[{"role":"user","content":"')
    suffix = '"}]}'
    fill = max(0, size - len(prefix) - len(suffix))
    sentence = "The quick brown fox jumps over the lazy dog while the gateway relays every byte. "
    text = (sentence * (fill // len(sentence) + 1))[:fill]
    return (prefix + text + suffix).encode()


def request_body(model: str, stream: bool, size: int) -> bytes:
    """The same body as bench/post.lua builds (kept identical on purpose)."""
    prefix = ('{"model":"' + model + '","stream":' + ("true" if stream else "false") +
              ',"max_tokens":16,"user":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},'
              '{"role":"user","content":"')
    suffix = '"}]}'
    fill = max(0, size - len(prefix) - len(suffix))
    sentence = "The quick brown fox jumps over the lazy dog while the gateway relays every byte. "
    text = (sentence * (fill // len(sentence) + 1))[:fill]
    return (prefix + text + suffix).encode()


# --------------------------------------------------------------------------- /proc helpers

def proc_stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read().decode("latin-1")
    except OSError:
        return None
    return s[s.rfind(")") + 2:].split()  # index 0 is field 3 (state)


def tree_pids(root: int) -> list[int]:
    """root and all its descendants (nginx master + workers, the gateway + any children)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = proc_stat_fields(int(d))
            if f:
                children.setdefault(int(f[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for p in pids:
        f = proc_stat_fields(p)
        if f is None:
            raise BenchError(f"process {p} disappeared during the run")
        total += int(f[11]) + int(f[12])  # utime + stime
    return total


def run_ns(pids: list[int]) -> int:
    """Nanoseconds on CPU of every thread of pids (/proc/<pid>/task/*/schedstat), for settling."""
    total = 0
    for p in pids:
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def quiesce(pids: list[int], max_s: float = 20.0, window_s: float = 0.1, idle_share: float = 0.02) -> float:
    """Waits until pids use less than idle_share of a CPU over a window (the previous run's
    backlog is drained: a slow target may still be answering requests wrk gave up on).
    Returns the seconds waited, or -1 if they did not settle within max_s."""
    t0 = time.monotonic()
    prev = run_ns(pids)
    while True:
        time.sleep(window_s)
        cur = run_ns(pids)
        if cur - prev < idle_share * window_s * 1e9:
            return time.monotonic() - t0
        if time.monotonic() - t0 > max_s:
            return -1.0
        prev = cur


def rss_kb(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def proc_status_field(pid: int, key: str) -> str:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def core_times() -> dict[int, tuple[int, int]]:
    """cpu index -> (busy ticks, total ticks) from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                v = [int(x) for x in parts[1:]]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                total = sum(v[:8])
                out[int(parts[0][3:])] = (total - idle, total)
    return out


def busy_fraction(before, after, cpus) -> float:
    busy = sum(after[c][0] - before[c][0] for c in cpus)
    total = sum(after[c][1] - before[c][1] for c in cpus)
    return busy / total if total else 0.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- processes

class Procs:
    """Every process the bench starts, each in its own process group, recorded in
    TMP/pids so that run.sh's EXIT trap can stop what a crash left behind."""

    def __init__(self, tmp: str, server_cpus: set[int]):
        self.tmp = tmp
        self.server_cpus = server_cpus
        self.live: dict[int, tuple[str, subprocess.Popen]] = {}
        self.lock = threading.Lock()

    def _write(self) -> None:
        path = os.path.join(self.tmp, "pids")
        with open(path + ".new", "w") as f:
            f.write("".join(f"{pid}\n" for pid in self.live))
        os.replace(path + ".new", path)

    def spawn(self, name: str, cmd: list[str], env=None, stderr=subprocess.DEVNULL) -> subprocess.Popen:
        # The child inherits our CPU affinity: switch to the server CPUs around the fork so
        # no `taskset` exec sits between the fork and the server (it would skew ready time).
        with self.lock:
            old = os.sched_getaffinity(0)
            os.sched_setaffinity(0, self.server_cpus)
            try:
                p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=stderr, start_new_session=True)
            finally:
                os.sched_setaffinity(0, old)
            self.live[p.pid] = (name, p)
            self._write()
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 10.0) -> int | None:
        with self.lock:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
            # nginx workers may outlive the master by a moment: make sure the group is gone.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.live.pop(p.pid, None)
            self._write()
            return p.returncode

    def stop_all(self) -> None:
        for _, p in list(self.live.values()):
            try:
                self.stop(p, timeout=5)
            except Exception as e:  # keep stopping the others
                log(f"warning: could not stop pid {p.pid}: {e}")


def wait_listening(port: int, proc: subprocess.Popen, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"{what} is not listening on 127.0.0.1:{port} after {timeout:.0f} s")
            time.sleep(0.005)


def wait_http_ok(port: int, path: str, proc: subprocess.Popen, what: str, timeout: float = 10.0) -> int:
    """Polls GET path in a tight loop until a 200; returns perf_counter_ns() at that moment."""
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(req)
                data = s.recv(64)
                if data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200"):
                    return time.perf_counter_ns()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: GET {path} on port {port} did not answer 200 within {timeout:.0f} s")


# --------------------------------------------------------------------------- Postgres + Redis

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_material(tmp: str) -> tuple[str, str]:
    """An RSA key made with the openssl CLI: its JWKS (JSON text) and a token it signs (sub
    bench-user, team bench-team, valid for a day), as an identity provider would issue."""
    key = os.path.join(tmp, "jwt-key.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                   check=True, capture_output=True)
    mod = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True, capture_output=True,
                         text=True).stdout.strip().split("=", 1)[1]
    jwk = {"kty": "RSA", "kid": "bench", "use": "sig", "alg": "RS256", "n": b64url(bytes.fromhex(mod)),
           "e": b64url((65537).to_bytes(3, "big"))}
    now = int(time.time())
    head = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
    claims = b64url(json.dumps({"iss": "bench-idp", "aud": "switchyard-bench", "sub": "bench-user",
                                "team": "bench-team", "iat": now, "exp": now + 86400}).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=f"{head}.{claims}".encode(),
                         check=True, capture_output=True).stdout
    return json.dumps({"keys": [jwk]}), f"{head}.{claims}.{b64url(sig)}"


def serve_jwks(jwks: str) -> str:
    """Serves `jwks` at http://127.0.0.1:<port>/jwks from a thread of this script (fetched at
    the gateway's start and every 10 minutes: no load). Returns the URL."""
    body = jwks.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/jwks"


def seed_key(i: int) -> str:
    """The i-th seeded virtual key: like a generated one (`sk-` + 32 hex). The SQL in
    Services.seed_keys builds the same strings (md5 of the same text)."""
    return "sk-" + hashlib.md5(f"switchyard-bench-{i}".encode()).hexdigest()


class Services:
    """A throw-away Postgres 15 and Redis (`scripts/services.sh start TMP/services --ephemeral`)
    on free loopback ports, data in the bench's temp dir, pinned to the server CPUs (idle during
    the load: with a cached key no request touches them). stop() stops them; run.sh's EXIT
    trap runs `services.sh stop` too, for a crash or a kill."""

    def __init__(self, procs: Procs, tmp: str):
        self.procs = procs
        self.dir = os.path.join(tmp, "services")
        self.database_url = self.redis_url = ""
        self.migrated = False  # set once a gateway has applied the migrations
        self.started = False
        self.psql_bin = next((p for p in ("/usr/lib/postgresql/15/bin/psql", shutil.which("psql") or "")
                              if p and os.access(p, os.X_OK)), "psql")

    def start(self) -> None:
        self.started = True  # even a half start is stopped
        with self.procs.lock:
            old = os.sched_getaffinity(0)
            os.sched_setaffinity(0, self.procs.server_cpus)
            try:
                r = subprocess.run([SERVICES_SH, "start", self.dir, "--ephemeral"], stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True, timeout=180)
            except subprocess.TimeoutExpired:
                raise BenchError("scripts/services.sh start did not finish within 180 s") from None
            finally:
                os.sched_setaffinity(0, old)
        if r.returncode != 0:
            raise BenchError(f"scripts/services.sh start failed ({r.returncode}):\n{r.stderr[-3000:]}")
        env = {}
        with open(os.path.join(self.dir, "env.sh")) as f:
            for line in f:
                if line.startswith("export "):
                    for kv in line.split()[1:]:
                        k, _, v = kv.partition("=")
                        env[k] = v
        self.database_url = env.get("SWITCHYARD_TEST_DATABASE_URL", "")
        self.redis_url = env.get("SWITCHYARD_TEST_REDIS_URL", "")
        if not self.database_url or not self.redis_url:
            raise BenchError(f"scripts/services.sh wrote no database or Redis URL in {self.dir}/env.sh")

    def postmaster_pid(self) -> int | None:
        try:
            with open(os.path.join(self.dir, "pg", "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def db_pids(self) -> list[int]:
        """The postmaster and its children (backends, writers, autovacuum), now."""
        pm = self.postmaster_pid()
        if pm is None:
            return []
        out = [pm]
        for d in os.listdir("/proc"):
            if d.isdigit():
                f = proc_stat_fields(int(d))
                if f is not None and int(f[1]) == pm:
                    out.append(int(d))
        return out

    def db_ticks(self) -> int:
        """CPU ticks Postgres used so far: the postmaster's own and its reaped children's
        (cutime + cstime), plus the live children's; a backend that exits between two
        readings is still counted (in cutime)."""
        pm = self.postmaster_pid()
        total = 0
        for p in self.db_pids():
            f = proc_stat_fields(p)
            if f is None:
                continue
            total += int(f[11]) + int(f[12])
            if p == pm:
                total += int(f[13]) + int(f[14])
        return total

    def redis_ticks(self) -> int:
        """CPU ticks the Redis server used so far (its threads included)."""
        try:
            with open(os.path.join(self.dir, "redis", "redis.pid")) as f:
                f_ = proc_stat_fields(int(f.readline().strip()))
        except (OSError, ValueError):
            return 0
        return int(f_[11]) + int(f_[12]) if f_ is not None else 0

    def pin_redis(self, cpus: set[int]) -> None:
        """Moves the Redis server (every thread of it) to `cpus`."""
        try:
            with open(os.path.join(self.dir, "redis", "redis.pid")) as f:
                pid = int(f.readline().strip())
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), cpus)
        except (OSError, ValueError):
            pass

    def pin_db(self, cpus: set[int]) -> None:
        """Moves Postgres to `cpus` (backends started later inherit the postmaster's CPUs)."""
        for p in self.db_pids():
            try:
                os.sched_setaffinity(p, cpus)
            except OSError:
                pass

    def gateway_env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}

    def psql(self, sql: str, timeout: float = 120) -> str:
        r = subprocess.run([self.psql_bin, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", self.database_url,
                            "-c", sql], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise BenchError(f"psql failed ({r.returncode}): {r.stderr.strip()}\nSQL: {sql[:300]}")
        return r.stdout.strip()

    def seed_keys(self, n: int) -> float:
        """Inserts keys seed_key(0..n-1) (token = sha256 hex of the key, as the gateway hashes
        it) in one statement; returns the seconds it took. Each has an alias, a user and a team
        (short strings, as a typical key has), every model allowed."""
        t0 = time.monotonic()
        self.psql(
            "INSERT INTO verification_tokens (token, key_name, key_alias, user_id, team_id, created_by, updated_by) "
            "SELECT encode(sha256(convert_to(k, 'UTF8')), 'hex'), 'sk-...' || right(k, 4), 'bench-key-' || i, "
            "'bench-user-' || (i % 1000), 'bench-team-' || (i % 100), 'bench', 'bench' "
            f"FROM (SELECT i, 'sk-' || md5('switchyard-bench-' || i) AS k FROM generate_series(0, {n - 1}) AS i) s "
            "ON CONFLICT (token) DO NOTHING")
        got = int(self.psql("SELECT count(*) FROM verification_tokens WHERE created_by = 'bench'"))
        if got < n:
            raise BenchError(f"seeded {got} keys, wanted {n}")
        return time.monotonic() - t0

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        try:
            r = subprocess.run([SERVICES_SH, "stop", self.dir], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=90)
            if r.returncode != 0:
                log(f"warning: scripts/services.sh stop failed ({r.returncode}): {r.stderr.strip()[-500:]}")
        except subprocess.TimeoutExpired:
            log("warning: scripts/services.sh stop did not finish within 90 s")


# --------------------------------------------------------------------------- nginx

NGINX_COMMON = """\
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  server_tokens off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_max_body_size 0;
  client_body_buffer_size 4m;
{body}
}}
"""

UPSTREAM_SERVERS = """\
  server {{
    listen 127.0.0.1:{port};
    location = /v1/chat/completions {{
      default_type {ctype};
{payload}
    }}
    location = /v1/messages {{
      default_type {ctype};
{messages_payload}
    }}
    # Gemini's generateContent / streamGenerateContent (the query carries the key).
    location /v1beta/models/ {{
      default_type {ctype};
{gemini_payload}
    }}
    # Ollama's /api/chat (its stream is NDJSON).
    location = /api/chat {{
      default_type {ollama_ctype};
{ollama_payload}
    }}
    # Bedrock's /model/{{id}}/converse and /converse-stream (bedrock_locations; SigV4 not checked).
{bedrock_locations}    # Cohere's v2 chat.
    location = /v2/chat {{
      default_type {ctype};
{cohere_payload}
    }}
    # The switchyard-callback target's live callback receiver (generic_api batches).
    location = /callbacks {{
      default_type application/json;
      return 200 '{{"ok":true}}';
    }}
    location / {{ return 404; }}
  }}
"""

HOP_SERVERS = """\
  upstream up_{name} {{
    server 127.0.0.1:{upstream_port};
    keepalive 64;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://up_{name};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer {key}";
      proxy_buffering {buffering};
    }}
  }}
"""


def nginx_return(payload: str) -> str:
    """`return 200 '<payload>'`, as directives. An nginx config token is limited to 4 KB, so a
    longer payload is split over variables set to constants and joined by `return`."""
    if len(payload) <= 3000:
        return f"      return 200 '{payload}';"
    parts = [payload[i:i + 3000] for i in range(0, len(payload), 3000)]
    sets = "".join(f"      set $body{i} '{p}';\n" for i, p in enumerate(parts))
    return sets + "      return 200 '" + "".join(f"$body{i}" for i in range(len(parts))) + "';"


class Nginx:
    def __init__(self, procs: Procs, nginx_bin: str, tmp: str, name: str, servers: str):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_COMMON.format(dir=self.dir, body=servers))
        self.procs, self.bin, self.name = procs, nginx_bin, name
        self.proc: subprocess.Popen | None = None
        self._pids: list[int] = []

    def start(self, ports: list[int]) -> None:
        test = subprocess.run([self.bin, "-t", "-q", "-p", self.dir, "-e", os.path.join(self.dir, "error.log"),
                               "-c", self.conf], capture_output=True, text=True)
        if test.returncode != 0:
            raise BenchError(f"nginx config for {self.name} is invalid:\n{test.stderr}")
        self.proc = self.procs.spawn(self.name, [self.bin, "-p", self.dir, "-e",
                                                 os.path.join(self.dir, "error.log"), "-c", self.conf])
        for port in ports:
            wait_listening(port, self.proc, f"nginx ({self.name})")
        # Workers are forked after the sockets are open: wait until there is one.
        deadline = time.monotonic() + 5
        while len(tree_pids(self.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._pids = tree_pids(self.proc.pid)

    def pids(self) -> list[int]:
        return self._pids

    def error_log_tail(self, n: int = 20) -> str:
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


# --------------------------------------------------------------------------- targets

class Target:
    """One thing wrk is pointed at. A new target (e.g. Switchyard with virtual keys on)
    is a subclass or a new SwitchyardTarget(...) in make_targets()."""
    name = "?"
    label = "?"
    is_switchyard = False
    key = MASTER_KEY
    unique_bodies = False  # wrk sends every request with a body of its own (post_unique.lua)
    cycle_bodies = 0       # with unique_bodies: cycle through this many fixed bodies instead
    messages = False       # Anthropic's /v1/messages instead of chat (post_messages.lua)

    @property
    def path(self) -> str: return MESSAGES_PATH if self.messages else PATH
    def lua(self) -> str: return LUA_MESSAGES if self.messages else LUA_UNIQUE if self.unique_bodies else LUA
    def body(self, mode: str, size: int) -> bytes:
        make = messages_request_body if self.messages else request_body
        return make(self.model(mode), mode == "sse", size)
    def answer_ok(self, mode: str, data: bytes) -> bool:
        if self.messages:
            return (mode == "json" and b'"type":"message"' in data) or (
                mode == "sse" and data.rstrip().endswith(b'{"type":"message_stop"}'))
        return (mode == "json" and b'"chat.completion"' in data) or (
            mode == "sse" and b"chat.completion.chunk" in data and data.rstrip().endswith(b"data: [DONE]"))

    def start(self) -> None: ...
    def port(self, mode: str) -> int: raise NotImplementedError
    def model(self, mode: str) -> str: return "bench-json" if mode == "json" else "bench-sse"
    def pids(self) -> list[int]: raise NotImplementedError
    def describe(self) -> str: return self.label


class DirectTarget(Target):
    name, label = "direct", "DIRECT (fake upstream)"

    def __init__(self, upstream: Nginx, ports: dict[str, int]):
        self.upstream, self.ports = upstream, ports

    def port(self, mode): return self.ports[mode]
    def pids(self): return self.upstream.pids()
    def describe(self): return "straight to the fake upstream (nginx `return 200`, 1 worker)"


class NginxHopTarget(Target):
    name, label = "nginx", "NGINX-HOP"

    def __init__(self, procs: Procs, nginx_bin: str, tmp: str, upstream_ports: dict[str, int]):
        self.ports = {"json": free_port(), "sse": free_port()}
        servers = "".join(HOP_SERVERS.format(name=m, upstream_port=upstream_ports[m], port=self.ports[m],
                                             key=UPSTREAM_KEY, buffering="on" if m == "json" else "off")
                          for m in ("json", "sse"))
        self.nginx = Nginx(procs, nginx_bin, tmp, "nginx-hop", servers)

    def start(self): self.nginx.start(list(self.ports.values()))
    def port(self, mode): return self.ports[mode]
    def pids(self): return self.nginx.pids()
    def describe(self):
        return ("nginx `proxy_pass` hop, 1 worker, upstream keepalive 64, HTTP/1.1, request buffered "
                "in memory (client_body_buffer_size 4m), proxy_buffering off for SSE")


class SwitchyardTarget(Target):
    """The gateway with the bench's config. With `services`, it runs with Postgres and Redis
    (DATABASE_URL, REDIS_URL); with `virtual_key` too, it authenticates with a virtual key made
    through POST /key/generate (master key) instead of the master key."""
    is_switchyard = True

    def __init__(self, procs: Procs, binary: str, tmp: str, upstream_ports: dict[str, int],
                 name: str = "switchyard", label: str = "SWITCHYARD", stages: str = "master key, router",
                 extra_config: str = "", services: Services | None = None, virtual_key: bool = False,
                 extra_env: dict[str, str] | None = None, key_params: dict | None = None, messages: bool = False,
                 extra_args: list[str] | None = None):
        self.procs, self.bin, self.name, self.label, self.stages = procs, binary, name, label, stages
        self.extra_args = extra_args or []  # more command-line options (--num_workers 2)
        self.key_params = key_params or {}  # more fields of the virtual key (limits)
        self.messages = messages
        self.services, self.virtual_key = services, virtual_key
        if virtual_key and not services:
            raise BenchError(f"{label}: a virtual key needs Postgres")
        self.key = MASTER_KEY  # replaced by the virtual key once generated
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.config = os.path.join(self.dir, "config.yaml")
        with open(self.config, "w") as f:
            f.write("model_list:\n")
            for m in ("json", "sse"):
                if messages:  # an Anthropic deployment: /v1/messages passes through
                    f.write(f"  - model_name: bench-{m}\n"
                            f"    litellm_params: {{model: anthropic/bench-model, "
                            f"api_base: \"http://127.0.0.1:{upstream_ports[m]}\", api_key: {UPSTREAM_KEY}}}\n")
                    continue
                f.write(f"  - model_name: bench-{m}\n"
                        f"    litellm_params: {{model: openai/bench-model, "
                        f"api_base: \"http://127.0.0.1:{upstream_ports[m]}/v1\", api_key: {UPSTREAM_KEY}}}\n")
            f.write(extra_config)
        self.env = dict(os.environ)
        for k in ("DATABASE_URL", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "SWITCHYARD_MASTER_KEY"):
            self.env.pop(k, None)
        self.env["LITELLM_MASTER_KEY"] = MASTER_KEY
        if services:
            self.env.update(services.gateway_env())
        self.env.update(extra_env or {})
        self.listen_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.ready_ms: list[float] = []
        self.first_ready_ms: float | None = None  # the start that applied the migrations (not in ready_ms)
        self.rss_idle_kb = 0
        self.threads = "?"

    def cmd(self) -> list[str]:
        return [self.bin, "--config", self.config, "--host", "127.0.0.1", "--port", str(self.listen_port),
                "--grace-period", "2", *self.extra_args]

    def start_measured(self) -> float:
        """exec → first 200 from /health/liveliness, in ms."""
        # O_APPEND, so the log can be truncated between runs while the gateway writes to it.
        logf = open(self.log_path, "ab")
        try:
            t0 = time.perf_counter_ns()
            self.proc = self.procs.spawn(self.name, self.cmd(), env=self.env, stderr=logf)
            t1 = wait_http_ok(self.listen_port, "/health/liveliness", self.proc, self.label)
        except BenchError as e:
            raise BenchError(f"{e}\n--- {self.log_path} (tail) ---\n{self.log_tail()}") from None
        finally:
            logf.close()
        return (t1 - t0) / 1e6

    def start(self, ready_runs: int = 1) -> None:
        """Starts the gateway ready_runs times (each timed), keeps the last one running. With
        Postgres, a first untimed start applies the migrations (the schema is in place before
        any timed start, as on every start but the very first in production) and, for a
        virtual-key target, generates the key, which is in Postgres for the later starts."""
        if self.services and (not self.services.migrated or self.virtual_key):
            self.first_ready_ms = self.start_measured()
            self.wait_schema()
            if self.virtual_key:
                self.key = self.generate_key()
            self.stop_checked()
        for i in range(ready_runs):
            self.ready_ms.append(self.start_measured())
            if i < ready_runs - 1:
                self.stop_checked()
        time.sleep(0.5)
        self.rss_idle_kb = rss_kb(self.pids())
        self.threads = proc_status_field(self.proc.pid, "Threads")
        self.keep_startup_log()

    def stop_checked(self) -> None:
        rc = self.procs.stop(self.proc, timeout=10)
        if rc not in (0, -signal.SIGTERM):
            raise BenchError(f"{self.label} exited with code {rc} on SIGTERM\n{self.log_tail()}")
        time.sleep(0.05)

    def admin(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.listen_port, timeout=10)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def wait_schema(self, timeout: float = 60) -> None:
        """Until the gateway has applied the migrations (it does so in the background after it
        starts listening): GET /key/list answers 200 once the tables exist."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.label} exited (code {self.proc.returncode}) before its schema was "
                                 f"ready:\n{self.log_tail()}")
            status, data = 0, b""
            try:
                status, data = self.admin("GET", "/key/list?size=1")
            except OSError:
                pass
            if status == 200:
                self.services.migrated = True
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{self.label}: GET /key/list still answers {status} after {timeout:.0f} s "
                                 f"(migrations not applied?): {data[:300]!r}\n{self.log_tail()}")
            time.sleep(0.1)

    def generate_key(self) -> str:
        status, data = self.admin("POST", "/key/generate", {"key_alias": f"bench-{self.name}", **self.key_params})
        try:
            key = json.loads(data).get("key", "") if status == 200 else ""
        except ValueError:
            key = ""
        if not key.startswith("sk-"):
            raise BenchError(f"{self.label}: POST /key/generate answered {status}: {data[:300]!r}")
        return key

    def keep_startup_log(self) -> None:
        shutil.copy(self.log_path, os.path.join(self.dir, "startup.log"))

    def truncate_log(self) -> None:
        try:
            os.truncate(self.log_path, 0)
        except OSError:
            pass

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 65536))
                return "".join(f.read().decode("utf-8", "replace").splitlines(True)[-n:])
        except OSError:
            return ""

    def port(self, mode): return self.listen_port
    def pids(self): return tree_pids(self.proc.pid)
    def describe(self):
        d = f"Switchyard ({self.stages}), `{' '.join(self.cmd()[1:])}`"
        if self.services:
            d += ", with `DATABASE_URL` and `REDIS_URL` (the private Postgres and Redis)"
        if self.virtual_key:
            d += ("; `Authorization: Bearer <virtual key>` from `POST /key/generate` (made at the first start, "
                  "cached in memory by the checks and the warm-up before any measured run)")
        elif self.key != MASTER_KEY:
            d += ("; `Authorization: Bearer <JWT>`: one RS256 token (sub, team, a day's expiry) signed by a key "
                  "whose JWKS this script serves (`JWT_PUBLIC_KEY_URL`)")
        else:
            d += "; `Authorization: Bearer <master key>`"
        return d


# --------------------------------------------------------------------------- HTTP client (TTFB, checks)

def _recv(sock: socket.socket, buf: bytearray) -> None:
    chunk = sock.recv(262144)
    if not chunk:
        raise ConnectionError("connection closed by the server")
    buf += chunk


def read_rest(sock: socket.socket, buf: bytearray, hdr_end: int, headers: dict[str, str]) -> bytes:
    pos = hdr_end + 4
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < pos + n:
            _recv(sock, buf)
        return bytes(buf[pos:pos + n])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            while (le := buf.find(b"\r\n", pos)) < 0:
                _recv(sock, buf)
            size = int(bytes(buf[pos:le]).split(b";")[0], 16)
            pos = le + 2
            if size == 0:
                while True:  # trailers up to the empty line
                    while (le := buf.find(b"\r\n", pos)) < 0:
                        _recv(sock, buf)
                    if le == pos:
                        return bytes(out)
                    pos = le + 2
            while len(buf) < pos + size + 2:
                _recv(sock, buf)
            out += buf[pos:pos + size]
            pos += size + 2
    raise BenchError("response with neither Content-Length nor chunked encoding")


def sse_request(sock: socket.socket, req: bytes) -> tuple[int, int, bytes]:
    """Sends req; returns (ns to the first `data:` of the body, status, whole body)."""
    buf = bytearray()
    hdr_end = -1
    status = 0
    headers: dict[str, str] = {}
    t0 = time.perf_counter_ns()
    sock.sendall(req)
    while True:
        _recv(sock, buf)
        if hdr_end < 0:
            hdr_end = buf.find(b"\r\n\r\n")
            if hdr_end >= 0:
                lines = bytes(buf[:hdr_end]).decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                if status != 200:
                    return 0, status, read_rest(sock, buf, hdr_end, headers)
        if hdr_end >= 0 and buf.find(b"data:", hdr_end + 4) >= 0:
            t1 = time.perf_counter_ns()
            break
    return t1 - t0, status, read_rest(sock, buf, hdr_end, headers)


def ttfb_samples(targets: list[Target], n: int, size: int = 1024) -> dict[str, list[float]]:
    """n streaming requests per target over one keep-alive connection each, interleaved
    request by request (A, B, C, A, B, C, ... with the order rotated every request), so
    that a slow phase of the machine hits every target alike."""
    reqs, socks = {}, {}
    for t in targets:
        body = t.body("sse", size)
        port = t.port("sse")
        reqs[t.name] = (f"POST {t.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                        f"Accept: text/event-stream\r\nAuthorization: Bearer {t.key}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    deadline = time.monotonic() + 60 * max(1, len(targets))
    try:
        for i in range(n):
            k = i % len(targets)
            for t in targets[k:] + targets[:k]:
                if t.name not in socks:
                    sock = socket.create_connection(("127.0.0.1", t.port("sse")), timeout=10)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    socks[t.name] = sock
                ns, status, rest = sse_request(socks[t.name], reqs[t.name])
                if status != 200 or not t.answer_ok("sse", rest):
                    raise BenchError(f"{t.label}: streaming request answered {status}: {rest[:300]!r}")
                out[t.name].append(ns / 1000)
            if time.monotonic() > deadline:
                break
    finally:
        for sock in socks.values():
            sock.close()
    return out


def check_target(target: Target) -> None:
    """One request of each kind before measuring: a wrong answer must not become a fast number."""
    for mode, size in (("json", 1024), ("sse", 1024), ("json", SIZES["1m"]), ("sse", SIZES["1m"])):
        body = target.body(mode, size)
        conn = http.client.HTTPConnection("127.0.0.1", target.port(mode), timeout=15)
        try:
            conn.request("POST", target.path, body=body, headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {target.key}"})
            r = conn.getresponse()
            data = r.read()
        except OSError as e:
            raise BenchError(f"{target.label}: {MODE_LABEL[mode]} {size}-byte request failed: {e}") from None
        finally:
            conn.close()
        ok = r.status == 200 and target.answer_ok(mode, data)
        if not ok:
            raise BenchError(f"{target.label}: {MODE_LABEL[mode]} {size}-byte request answered "
                             f"{r.status}: {data[:400]!r}")
    if getattr(target, "callback_name", None):
        # The callback must really deliver: its receiver accepted the events of these requests.
        deadline = time.monotonic() + 15
        pattern = re.compile(r'^switchyard_callback_events_total\{callback="' + re.escape(target.callback_name) +
                             r'",outcome="sent"\} (\S+)$', re.M)
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", target.port("json"), timeout=15)
            try:
                conn.request("GET", "/metrics")
                text = conn.getresponse().read().decode()
            finally:
                conn.close()
            m = pattern.search(text)
            if m and float(m.group(1)) >= 4:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{target.label}: the callback receiver did not get the check requests' events")
            time.sleep(0.2)


# --------------------------------------------------------------------------- RSS with N keys cached

async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Reads one HTTP/1.1 response; returns (status, whether the server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                break
            await reader.readexactly(size + 2)
    else:
        raise BenchError(f"response {status} with neither Content-Length nor chunked encoding")
    return status, headers.get("connection", "").lower() == "close"


async def _use_keys(port: int, keys: list[str], conns: int, timeout: float) -> dict[int, int]:
    """One non-stream 1 KB chat completion per key, `conns` keep-alive connections taking the
    next key in turn; returns {status: count} (0: no answer)."""
    body = request_body("bench-json", False, 1024)
    statuses: dict[int, int] = {}
    it = iter(keys)

    async def worker():
        reader = writer = None
        try:
            for key in it:
                status = 0
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write((f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                  f"Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n"
                                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
                    status, close = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                    close = True
                statuses[status] = statuses.get(status, 0) + 1
                if close and writer is not None:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    # Errors reach us through gather(); after an interruption (SIGINT), the cancelled workers
    # would otherwise be reported once more by the loop, as "exception never retrieved".
    asyncio.get_running_loop().set_exception_handler(lambda _loop, _ctx: None)
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(conns))), timeout)
    return statuses


def measure_cached_keys(make_gateway, services: Services, n: int, timeout: float) -> dict:
    """RSS of a fresh gateway (the `switchyard` target's setup) after each of n seeded virtual
    keys was used once (n = the key cache's limit, 100,000: a fresh process holds exactly those)."""
    seed_s = services.seed_keys(n)
    log(f"seeded {n:,} keys in Postgres in {seed_s:.1f} s")
    gw = make_gateway()
    try:
        gw.start(1)
        idle = rss_kb(gw.pids())
        keys = [seed_key(i) for i in range(n)]
        sampler = RssSampler(gw.pids(), period=0.1)
        sampler.start()
        t0 = time.monotonic()
        try:
            statuses = asyncio.run(_use_keys(gw.listen_port, keys, 32, timeout))
        except asyncio.TimeoutError:
            raise BenchError(f"using {n:,} keys took more than {timeout:.0f} s") from None
        finally:
            peak = sampler.finish()
        secs = time.monotonic() - t0
        if gw.proc.poll() is not None:
            raise BenchError(f"{gw.label} exited (code {gw.proc.returncode}) while keys were used:\n{gw.log_tail()}")
        time.sleep(1.0)
        after = rss_kb(gw.pids())
        ok = statuses.get(200, 0)
        if ok != n:
            log(f"warning: {n - ok:,} of {n:,} key requests failed: {statuses}\n{gw.log_tail(10)}")
        log(f"{n:,} keys used once in {secs:.1f} s ({n / secs:,.0f}/s): RSS {fmt_mb(idle)} idle -> "
            f"{fmt_mb(after)} ({(after - idle) * 1024 / n:,.0f} bytes/key), peak {fmt_mb(peak)}")
        return {"keys": n, "ok": ok, "statuses": {str(k): v for k, v in statuses.items()}, "seconds": secs,
                "seed_seconds": seed_s, "rss_idle_kb": idle, "rss_kb": after, "rss_peak_kb": peak,
                "ready_ms": gw.ready_ms}
    finally:
        if gw.proc is not None:
            gw.procs.stop(gw.proc)


# --------------------------------------------------------------------------- wrk runs

class Scenario:
    def __init__(self, mode: str, size: str, conns: int):
        self.mode, self.size, self.conns = mode, size, conns
        self.name = f"{mode}-{size}-{conns}c"

    @property
    def label(self) -> str:
        return f"{MODE_LABEL[self.mode]}, {SIZE_LABEL[self.size]}, {self.conns} conn"


ALL_SCENARIOS = [Scenario(m, s, c) for c in (64, 1) for m in ("json", "sse") for s in ("1k", "100k", "1m")]
QUICK_SCENARIOS = ["json-1k-64c", "sse-1k-64c", "json-1m-64c", "json-1k-1c", "sse-1k-1c"]


class RssSampler(threading.Thread):
    def __init__(self, pids: list[int], period: float = 0.02):
        super().__init__(daemon=True)
        self.pids, self.period, self.peak_kb = pids, period, 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(self.pids))
            self.stop_ev.wait(self.period)

    def finish(self) -> int:
        self.stop_ev.set()
        self.join()
        self.peak_kb = max(self.peak_kb, rss_kb(self.pids))
        return self.peak_kb


class Bench:
    def __init__(self, args, wrk_bin: str, upstream: Nginx, server_cpus: set[int], client_cpus: set[int],
                 services: "Services | None" = None):
        self.args, self.wrk, self.upstream, self.services = args, wrk_bin, upstream, services
        self.server_cpus, self.client_cpus = server_cpus, client_cpus
        self.runs: list[dict] = []

    def wrk_cmd(self, target: Target, sc: Scenario, duration: int) -> list[str]:
        threads = max(1, min(self.args.wrk_threads or len(self.client_cpus), sc.conns))
        url = f"http://127.0.0.1:{target.port(sc.mode)}{target.path}"
        return [self.wrk, "-t", str(threads), "-c", str(sc.conns), "-d", f"{duration}s", "--timeout", "10s",
                "-s", target.lua(), url, "--", target.model(sc.mode), "true" if sc.mode == "sse" else "false",
                str(SIZES[sc.size]), target.key] + ([str(target.cycle_bodies)] if target.cycle_bodies else [])

    def start_perf(self, target: Target, pids: list[int], rnd: int) -> subprocess.Popen | None:
        """With BENCH_PERF_DIR set: `perf record` of the target's processes and the Redis
        server for the measured run, into BENCH_PERF_DIR/<target>-<round>.data (options from
        BENCH_PERF_ARGS, default `-F 2000`). Sampling costs the target CPU: figures of such
        a run are for finding where time goes, not for docs/benchmarks.md."""
        out = os.environ.get("BENCH_PERF_DIR")
        if not out:
            return None
        watched = list(pids)
        try:
            with open(os.path.join(self.services.dir, "redis", "redis.pid")) as f:
                watched.append(int(f.readline().strip()))
        except (AttributeError, OSError, ValueError):
            pass
        os.makedirs(out, exist_ok=True)
        return subprocess.Popen(["perf", "record"] + os.environ.get("BENCH_PERF_ARGS", "-F 2000").split() +
                                ["-p", ",".join(map(str, watched)), "-o", os.path.join(out, f"{target.name}-{rnd}.data")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run_one(self, target: Target, sc: Scenario, duration: int, rnd: int, record: bool = True) -> dict:
        if isinstance(target, SwitchyardTarget):
            target.truncate_log()
        pids = target.pids()
        up_pids = self.upstream.pids()
        # Postgres too: a previous target's spend backlog must not be written during this run.
        db_pids = self.services.db_pids() if self.services is not None and self.services.started else []
        settle = quiesce(sorted(set(pids) | set(up_pids) | set(db_pids)))
        if settle < 0:
            log(f"warning: {target.label} still busy 20 s after the previous run; measuring anyway")
        db0 = self.services.db_ticks() if db_pids else 0
        rd0 = self.services.redis_ticks() if db_pids else 0
        sampler = RssSampler(pids)
        cmd = self.wrk_cmd(target, sc, duration)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        ct0, tt0, ut0 = core_times(), cpu_ticks(pids), cpu_ticks(up_pids)
        own0 = time.process_time()
        sampler.start()
        perf = self.start_perf(target, pids, rnd) if record else None
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        finally:
            peak = sampler.finish()
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=60)
        own1 = time.process_time()
        if isinstance(target, SwitchyardTarget) and target.proc.poll() is not None:
            raise BenchError(f"{target.label} exited (code {target.proc.returncode}) during {sc.name}:\n"
                             f"{target.log_tail()}")
        ct1, tt1, ut1 = core_times(), cpu_ticks(pids), cpu_ticks(up_pids)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # What the requests left to do after the load (the spend writer's backlog, in the
        # gateway and in Postgres) is their cost too: wait until both are idle and count it.
        t_drain = time.monotonic()
        drained = quiesce(sorted(set(pids) | set(self.services.db_pids()))) if db_pids else 0.0
        drain_s = time.monotonic() - t_drain if drained >= 0 else -1.0
        tt2 = cpu_ticks(pids)
        db1 = self.services.db_ticks() if db_pids else 0
        rd1 = self.services.redis_ticks() if db_pids else 0
        line = next((ln for ln in res.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
        if res.returncode != 0 or line is None:
            raise BenchError(f"wrk failed ({res.returncode}) against {target.label}, {sc.name}:\n"
                             f"{' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
        w = json.loads(line[len("BENCHJSON "):])
        secs = w["duration_us"] / 1e6
        reqs = w["requests"]
        target_cpu_s = (tt1 - tt0) / CLK_TCK
        upstream_cpu_s = (ut1 - ut0) / CLK_TCK if target.pids() != up_pids else 0.0
        wrk_cpu_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        all_busy_s = sum(ct1[c][0] - ct0[c][0] for c in ct1) / CLK_TCK
        other_s = max(0.0, all_busy_s - target_cpu_s - upstream_cpu_s - wrk_cpu_s - (own1 - own0))
        errors = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_status"] + w["err_timeout"]
        run = {
            "target": target.name, "scenario": sc.name, "round": rnd, "duration_s": secs,
            "requests": reqs, "rps": reqs / secs if secs else 0.0,
            "p50_us": w["p50_us"], "p90_us": w["p90_us"], "p99_us": w["p99_us"], "p999_us": w["p999_us"],
            "mean_us": w["mean_us"], "max_us": w["max_us"], "errors": errors,
            "err_status": w["err_status"], "cpu_ticks": tt2 - tt0, "cpu_ticks_load": tt1 - tt0,
            "db_ticks": db1 - db0, "redis_ticks": rd1 - rd0, "drain_s": drain_s, "upstream_ticks": ut1 - ut0,
            "server_busy": busy_fraction(ct0, ct1, self.server_cpus),
            "client_busy": busy_fraction(ct0, ct1, self.client_cpus),
            "other_cpu_pct": 100.0 * other_s / secs if secs else 0.0,
            "wrk_cpu_s": wrk_cpu_s, "rss_peak_kb": peak, "settle_s": settle, "cmd": " ".join(cmd),
        }
        if reqs == 0:
            errors = run["errors"] = errors + 1
            log(f"warning: no response at all from {target.label} in {sc.name} round {rnd + 1}")
        if errors:
            log(f"warning: {errors} errors ({w['err_status']} non-2xx) against {target.label} in {sc.name}")
            if isinstance(target, SwitchyardTarget):
                log(f"gateway log tail:\n{target.log_tail(10)}")
        if record:
            self.runs.append(run)
        return run


def aggregate(runs: list[dict]) -> dict:
    if not runs:
        return {}
    rps = [r["rps"] for r in runs]
    reqs = sum(r["requests"] for r in runs)
    med = statistics.median
    answered = [r for r in runs if r["requests"] > 0]  # latencies of a run with no response are 0: skip

    def lat(k):
        return med(r[k] for r in answered) if answered else NAN
    return {
        "rounds": len(runs), "requests": reqs,
        "rps": med(rps), "rps_spread": (max(rps) - min(rps)) / med(rps) if med(rps) else 0.0,
        "p50_us": lat("p50_us"), "p90_us": lat("p90_us"), "p99_us": lat("p99_us"),
        "cpu_us_per_req": sum(r["cpu_ticks"] for r in runs) / CLK_TCK * 1e6 / reqs if reqs else NAN,
        "db_us_per_req": sum(r.get("db_ticks", 0) for r in runs) / CLK_TCK * 1e6 / reqs if reqs else NAN,
        "redis_us_per_req": sum(r.get("redis_ticks", 0) for r in runs) / CLK_TCK * 1e6 / reqs if reqs else NAN,
        "drain_s": max(r.get("drain_s", 0.0) for r in runs),
        "upstream_us_per_req": sum(r["upstream_ticks"] for r in runs) / CLK_TCK * 1e6 / reqs if reqs else NAN,
        "server_busy": med(r["server_busy"] for r in runs), "client_busy": med(r["client_busy"] for r in runs),
        "other_cpu_pct": max(r["other_cpu_pct"] for r in runs),
        "errors": sum(r["errors"] for r in runs), "rss_peak_kb": max(r["rss_peak_kb"] for r in runs),
    }


# --------------------------------------------------------------------------- report

# None: not measured in this run. NaN: measured, but the target gave no usable answer.

def fmt_us(v) -> str:
    return "—" if v is None else "no data" if v != v else f"{v:,.0f}"


def fmt_signed_us(v) -> str:
    return "—" if v is None else "no data" if v != v else f"{v:+,.0f} µs"


def fmt_us1(v) -> str:
    return "—" if v is None else "no data" if v != v else f"{v:,.1f}"


def fmt_ratio(v) -> str:
    return "—" if v is None else "no data" if v != v else f"{v:.2f}"


def fmt_mb(kb) -> str:
    return "—" if kb is None else f"{kb / 1024:.1f} MB"


def verdict(value, limit, op) -> str:
    if value is None:
        return "—"
    if value != value:
        return "**FAIL** (no data)"
    ok = value >= limit if op == ">=" else value <= limit
    return "PASS" if ok else "**FAIL**"


def sh(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else "?"
    except Exception:
        return "?"


def machine_info() -> dict:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    debian = "?"
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "mem": mem, "kernel": platform.release(), "debian": debian}


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "") if rev else "?"
    except Exception:
        return "?"


def render(ctx: dict) -> str:
    args, targets, agg, ttfb = ctx["args"], ctx["targets"], ctx["agg"], ctx["ttfb"]
    names = [t.name for t in targets]
    sy_targets = [t for t in targets if t.is_switchyard]
    hop = "nginx" if "nginx" in names else None
    direct = "direct" if "direct" in names else None
    L = []
    m = ctx["machine"]
    L.append("# Switchyard benchmarks\n")
    L.append(f"Generated by `./bench/run.sh` on {ctx['date']} (UTC), in {ctx['elapsed_s']:.0f} s. "
             f"Figures are ratios against a direct call to the upstream and against one nginx proxy hop, "
             f"measured in the same run.\n")
    L.append(f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['mem']}, Linux {m['kernel']}, "
             f"Debian {m['debian']}")
    L.append(f"- **Commit:** {ctx['git']}; {ctx['versions']}")
    L.append(f"- **Command:** `{ctx['command']}` — {args.rounds} round{'s' if args.rounds > 1 else ''} × {args.duration} s per "
             f"(scenario, target), targets alternated A/B/C, A/B/C… (order rotated each round); "
             f"medians over rounds")
    L.append(f"- **CPU pinning:** load generator (wrk, TTFB client) on CPU {ctx['client_cpus']}; "
             f"servers (fake upstream, nginx hop, Switchyard) on CPU {ctx['server_cpus']}; "
             f"Postgres on CPU {ctx['db_cpus'] or ctx['server_cpus']}; "
             f"Redis on CPU {ctx.get('redis_cpus') or ctx['server_cpus']}; "
             f"wrk with {ctx['wrk_threads_desc']}")
    if ctx.get("busy_warning"):
        L.append(f"- **Warning:** {ctx['busy_warning']}")
    noisy = [r for r in ctx["runs"] if r["other_cpu_pct"] > NOISY_OTHER_PCT]
    if noisy:
        L.append(f"- **Noise:** processes outside the bench used more than {NOISY_OTHER_PCT}% of a core in "
                 f"{len(noisy)} of {len(ctx['runs'])} runs (up to {max(r['other_cpu_pct'] for r in noisy):.0f}%); "
                 f"those rows are marked ~ below. Re-run on a quiet machine for figures to publish.")
    L.append("")
    L.append("## Summary against the performance goals\n")
    cols = [t.label for t in sy_targets] or ["SWITCHYARD"]
    L.append("| # | metric | " + " | ".join(cols) + " | nginx hop (reference) | threshold | result |")
    L.append("|---|---|" + "---|" * len(cols) + "---|---|---|")

    def g(sc, t, k):
        a = agg.get((sc, t))
        return a.get(k) if a else None

    def ratio(sc, t, ref, k):
        a, b = g(sc, t, k), g(sc, ref, k) if ref else None
        return a / b if a is not None and b else None

    runs = ctx.get("runs") or []

    def round_ratios(sc, t, ref):
        """rps(t) / rps(ref) within each round (the two ran back to back), in round order."""
        per: dict[int, dict[str, float]] = {}
        for r in runs:
            if r["scenario"] == sc and r["target"] in (t, ref) and r.get("round", -1) >= 0:
                per.setdefault(r["round"], {})[r["target"]] = r["rps"]
        return [v[t] / v[ref] for _, v in sorted(per.items()) if t in v and ref in v and v[ref]]

    def rps_ratio(sc, t, ref):
        """The median over rounds of the per-round ratio: drift between rounds cancels (a
        ratio of per-target medians can pair one target's fast round with the other's slow
        one)."""
        xs = round_ratios(sc, t, ref) if ref else []
        return statistics.median(xs) if xs else ratio(sc, t, ref, "rps")

    def added(sc, t, k):
        a, b = g(sc, t, k), g(sc, direct, k) if direct else None
        return a - b if a is not None and b is not None else None

    def ttfb_added(t, k):
        if t not in ttfb or not direct or direct not in ttfb:
            return None
        return ttfb[t][k] - ttfb[direct][k]

    def row(num, metric, per_sy, hop_cell, threshold, judge, scs=()):
        """per_sy: function(target) -> (cell text, value or None); judge: value -> result;
        scs: the scenarios the row is computed from (errors in them fail the row)."""
        cells, results = [], []
        missing = [x for x in scs if not any((x, t.name) in agg for t in targets)]
        if missing:
            L.append(f"| {num} | {metric} | " + " | ".join(["not run"] * len(cols)) +
                     f" | not run | {threshold} | — (scenario {', '.join(missing)} not in this run) |")
            return
        if sy_targets:
            for t in sy_targets:
                text, val = per_sy(t)
                cells.append(text)
                res = judge(val) if judge else "info"
                errs = sum((agg.get((s, n)) or {}).get("errors", 0) for s in scs for n in (t.name, hop, direct))
                if judge and errs and res != "—":
                    res = f"**FAIL** ({errs} errors)"
                results.append(res)
        else:
            cells.append("not run")
            results.append("—")
        res = results[0] if len(results) == 1 else " / ".join(results)
        L.append(f"| {num} | {metric} | " + " | ".join(cells) + f" | {hop_cell} | {threshold} | {res} |")

    sc = "json-1k-64c"
    row(1, "throughput, non-stream, 1 KB, 64 conn: rps / nginx-hop rps (median of the per-round ratios)",
        lambda t: (f"{fmt_ratio(rps_ratio(sc, t.name, hop))} (rounds: "
                   f"{', '.join(fmt_ratio(x) for x in round_ratios(sc, t.name, hop)) if hop else '—'}; "
                   f"median {fmt_us(g(sc, t.name, 'rps'))} rps)",
                   rps_ratio(sc, t.name, hop)),
        f"1.00 ({fmt_us(g(sc, hop, 'rps'))} rps)" if hop else "not run", f"≥ {TH_RPS_RATIO}",
        lambda v: verdict(v, TH_RPS_RATIO, ">="), [sc])
    row(1, "CPU per request, same runs: / nginx-hop's",
        lambda t: (f"{fmt_ratio(ratio(sc, t.name, hop, 'cpu_us_per_req'))} "
                   f"({fmt_us(g(sc, t.name, 'cpu_us_per_req'))} µs)", ratio(sc, t.name, hop, "cpu_us_per_req")),
        f"1.00 ({fmt_us(g(sc, hop, 'cpu_us_per_req'))} µs)" if hop else "not run", f"≤ {TH_CPU_RATIO}",
        lambda v: verdict(v, TH_CPU_RATIO, "<="), [sc])
    sc1 = "json-1k-1c"
    row(2, "added p50 vs direct, non-stream, 1 KB, 1 conn",
        lambda t: (fmt_signed_us(added(sc1, t.name, "p50_us")), added(sc1, t.name, "p50_us")),
        fmt_signed_us(added(sc1, hop, "p50_us")) if hop else "not run", f"≤ {TH_ADDED_P50_US} µs",
        lambda v: verdict(v, TH_ADDED_P50_US, "<="), [sc1])
    row(2, "added p99 vs direct, same runs",
        lambda t: (fmt_signed_us(added(sc1, t.name, "p99_us")), added(sc1, t.name, "p99_us")),
        fmt_signed_us(added(sc1, hop, "p99_us")) if hop else "not run", f"≤ {TH_ADDED_P99_US} µs",
        lambda v: verdict(v, TH_ADDED_P99_US, "<="), [sc1])
    row(2, "streaming time to first byte added vs direct (median), 1 conn",
        lambda t: (fmt_signed_us(ttfb_added(t.name, "p50")), ttfb_added(t.name, "p50")),
        fmt_signed_us(ttfb_added(hop, "p50")) if hop else "not run", f"≤ {TH_TTFB_ADDED_US} µs",
        lambda v: verdict(v, TH_TTFB_ADDED_US, "<="))
    scm = "json-1m-64c"
    row(3, "1 MB body, non-stream, 64 conn: CPU per request / nginx-hop's",
        lambda t: (f"{fmt_ratio(ratio(scm, t.name, hop, 'cpu_us_per_req'))} "
                   f"({fmt_us(g(scm, t.name, 'cpu_us_per_req'))} µs)", ratio(scm, t.name, hop, "cpu_us_per_req")),
        f"1.00 ({fmt_us(g(scm, hop, 'cpu_us_per_req'))} µs)" if hop else "not run", f"≤ {TH_CPU_RATIO_1M}",
        lambda v: verdict(v, TH_CPU_RATIO_1M, "<="), [scm])
    row(4, "RSS idle (after start)",
        lambda t: (fmt_mb(t.rss_idle_kb), t.rss_idle_kb / 1024),
        f"{fmt_mb(ctx['hop_rss_idle_kb'])} (master+worker)" if hop else "not run", f"≤ {TH_RSS_IDLE_MB} MB",
        lambda v: verdict(v, TH_RSS_IDLE_MB, "<="))

    def peak64(tname):
        vals = [a["rss_peak_kb"] for (s, tn), a in agg.items() if tn == tname and s.endswith("-64c")]
        return max(vals) if vals else None

    def peak64_cell(t):
        v = peak64(t.name)
        a = g(sc, t.name, "rss_peak_kb")
        return (f"{fmt_mb(v)} (1 KB: {fmt_mb(a)})" if v is not None else "not run",
                v / 1024 if v is not None else None)

    row(4, "RSS under the 64-conn load (peak over every 64-conn run, all body sizes)", peak64_cell,
        fmt_mb(peak64(hop)) if hop and peak64(hop) is not None else "—", f"≤ {TH_RSS_LOAD_MB} MB",
        lambda v: verdict(v, TH_RSS_LOAD_MB, "<="), [s.name for s in ctx["scenarios"] if s.conns > 1])
    row(4, "ready: exec → first 200 from /health/liveliness (median)",
        lambda t: (f"{statistics.median(t.ready_ms):.1f} ms (n={len(t.ready_ms)}, max "
                   f"{max(t.ready_ms):.1f})", statistics.median(t.ready_ms)),
        "—", f"≤ {TH_READY_MS} ms", lambda v: verdict(v, TH_READY_MS, "<="))
    ck = ctx.get("cached_keys")

    def cached_keys_cell(t):
        if t.name != "switchyard":
            return "—", None
        if ck is None:
            return "not run", None
        text = (f"{fmt_mb(ck['rss_kb'])} (idle before: {fmt_mb(ck['rss_idle_kb'])}; "
                f"{(ck['rss_kb'] - ck['rss_idle_kb']) * 1024 / ck['keys']:,.0f} bytes/key)")
        if ck["ok"] != ck["keys"]:
            text += f" ⚠ {ck['keys'] - ck['ok']:,} requests failed"
        return text, None

    row(4, f"RSS with {ck['keys'] if ck else args.cached_keys:,} keys cached (a fresh gateway, each key used once)",
        cached_keys_cell, "—", "—", None)
    # Context rows, no threshold of their own.
    for s, what in (("sse-1k-64c", "stream, 1 KB, 64 conn"), ("json-100k-64c", "non-stream, 100 KB, 64 conn"),
                    ("sse-1m-64c", "stream, 1 MB, 64 conn")):
        if any((s, t.name) in agg for t in sy_targets) or (s, hop) in agg:
            row("i", f"{what}: rps / nginx-hop rps; CPU per request / nginx-hop's",
                lambda t, s=s: (f"{fmt_ratio(rps_ratio(s, t.name, hop))}; "
                                f"{fmt_ratio(ratio(s, t.name, hop, 'cpu_us_per_req'))}", None),
                f"{fmt_us(g(s, hop, 'rps'))} rps; {fmt_us(g(s, hop, 'cpu_us_per_req'))} µs" if hop else "not run",
                "—", None)
    row("i", "streaming TTFB added vs direct, p99",
        lambda t: (fmt_signed_us(ttfb_added(t.name, "p99")), None),
        fmt_signed_us(ttfb_added(hop, "p99")) if hop else "not run", "—", None)
    if not sy_targets:
        L.append("\nSwitchyard was not measured in this run (`--targets` " + ",".join(names) + ").")
    if sy_targets:
        L.append("\nStages on in Switchyard: " + "; ".join(f"{t.label}: {t.stages}" for t in sy_targets) +
                 ". The throughput goal asks for a virtual key and the router on: that is the SWITCHYARD "
                 "column (a key made with `POST /key/generate` at start, served from the gateway's key cache "
                 "after its first use).")
    L.append("\nAcceptance 5 (one command on a fresh machine; the test suite does not depend on it): "
             "this file was produced by that one command.")

    L.append("\n## Raw figures\n")
    L.append("Medians over rounds; CPU µs/req = (utime+stime of the target's processes, from the start of "
             "the run until the target and Postgres are idle again: the spend writer's backlog counts) / "
             "requests over all rounds; Postgres µs/req and Redis µs/req = the same for the Postgres server's "
             "processes and for the Redis server; "
             "`spread` = (max−min)/median of the per-round rps; `server core` = busy share of the "
             "server CPU; `other` = the highest share of a core used by processes outside the bench in any "
             "round (noise indicator).\n")
    L.append("| scenario | target | req/s | spread | p50 µs | p90 µs | p99 µs | CPU µs/req | upstream µs/req "
             "| Postgres µs/req | Redis µs/req | server core | client core | other | peak RSS | errors |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for scn in ctx["scenarios"]:
        for t in targets:
            a = agg.get((scn.name, t.name))
            if not a:
                continue
            up = "(itself)" if t.name == "direct" else fmt_us(a["upstream_us_per_req"])
            L.append(f"| {scn.label} | {t.label} | {a['rps']:,.0f} | {100 * a['rps_spread']:.0f}% | "
                     f"{fmt_us(a['p50_us'])} | {fmt_us(a['p90_us'])} | {fmt_us(a['p99_us'])} | "
                     f"{fmt_us1(a['cpu_us_per_req'])} | {up} | "
                     f"{fmt_us1(a['db_us_per_req']) if t.name.startswith('switchyard') else '—'} | "
                     f"{fmt_us1(a['redis_us_per_req']) if t.name.startswith('switchyard') else '—'} | "
                     f"{100 * a['server_busy']:.0f}% | "
                     f"{100 * a['client_busy']:.0f}% | {a['other_cpu_pct']:.0f}%"
                     f"{' ~' if a['other_cpu_pct'] > NOISY_OTHER_PCT else ''} | {fmt_mb(a['rss_peak_kb'])} | "
                     f"{a['errors'] if a['errors'] else 0}{' ⚠' if a['errors'] else ''} |")
    if ttfb:
        L.append("\n### Streaming time to first byte (1 conn, 1 KB body, keep-alive)\n")
        L.append("Time from sending the request to receiving the first `data:` of the body, measured by a "
                 "Python client on the load-generator CPU (its own overhead is the same for every target); "
                 "the targets are interleaved request by request.\n")
        L.append("| target | samples | p50 µs | p90 µs | p99 µs | p50 added vs direct |")
        L.append("|---|---|---|---|---|---|")
        for t in targets:
            if t.name in ttfb:
                d = ttfb[t.name]
                add = fmt_signed_us(ttfb_added(t.name, "p50")) if t.name != direct else "—"
                L.append(f"| {t.label} | {d['n']} | {d['p50']:,.0f} | {d['p90']:,.0f} | {d['p99']:,.0f} | {add} |")
    if sy_targets:
        L.append("\n### Switchyard memory and start-up\n")
        L.append("| target | ready (ms, every start) | first start (applies the migrations, makes the key; not in the median) "
                 "| RSS idle after start | RSS idle after the load | threads |")
        L.append("|---|---|---|---|---|---|")
        for t in sy_targets:
            first = f"{t.first_ready_ms:.1f} ms" if t.first_ready_ms is not None else "—"
            L.append(f"| {t.label} | {', '.join(f'{x:.1f}' for x in t.ready_ms)} | {first} | "
                     f"{fmt_mb(t.rss_idle_kb)} | {fmt_mb(ctx['rss_after'].get(t.name))} | {t.threads} |")
        if ck:
            L.append(f"\n{ck['keys']:,} virtual keys cached: inserted into Postgres in one statement "
                     f"({ck['seed_seconds']:.1f} s), then a fresh gateway (the SWITCHYARD setup) got one non-stream "
                     f"1 KB chat completion with each key, on 32 keep-alive connections, in {ck['seconds']:.1f} s "
                     f"({ck['keys'] / ck['seconds']:,.0f} keys/s; each a cache miss, a Postgres lookup); answers: "
                     f"{', '.join(f'{k}: {v:,}' for k, v in sorted(ck['statuses'].items()))}. RSS idle before "
                     f"{fmt_mb(ck['rss_idle_kb'])}, 1 s after {fmt_mb(ck['rss_kb'])}, peak while using them "
                     f"{fmt_mb(ck['rss_peak_kb'])}.")
    L.append("\n## Targets\n")
    for t in targets:
        L.append(f"- **{t.label}**: {t.describe()}")
    L.append(f"- Fake upstream: nginx, 1 worker, `return 200` with a fixed chat.completion JSON "
             f"({ctx['json_len']} bytes) on one port and a fixed 20-event SSE body ({ctx['sse_len']} bytes, "
             f"`text/event-stream`: 18 chat.completion.chunk events, a usage chunk, `data: [DONE]`) on another; "
             f"the request body is read and discarded.")
    L.append("\n## Method\n")
    L.append("- Load: wrk with `bench/post.lua`: `POST /v1/chat/completions`, a JSON body of exactly 1 KB, 100 KB or "
             "1 MB (`model`, `stream`, `max_tokens`, `user`, a system and a user message padded with text), "
             "`Authorization: Bearer <key>` (the target's key, see Targets); a static request (no Lua per "
             "request). 64 connections for "
             "throughput, 1 connection for latency. wrk's latency is the time to the whole response.")
    L.append(f"- Example: `{ctx['example_cmd']}`")
    L.append("- CPU per request: utime+stime ticks (1/" + str(CLK_TCK) + " s) of the target's processes from "
             "`/proc/<pid>/stat` before and after each run (nginx: master + worker; Switchyard: the process, all "
             "threads), summed over rounds and divided by the requests wrk completed. Kernel work done on "
             "behalf of a process (loopback TCP included) counts as its stime.")
    L.append("- RSS: `VmRSS` from `/proc/<pid>/status`, sampled every 20 ms during each run (peak).")
    if ck:
        L.append("- RSS with N keys cached: N virtual keys inserted into Postgres (`INSERT ... SELECT "
                 "generate_series`, "
                 "token = `encode(sha256(key), 'hex')`, each with an alias, a user and a team), then a fresh "
                 "gateway answers one request per key (a cache miss each: one Postgres lookup, then the entry stays "
                 "in memory); `VmRSS` 1 s later. The default N is the key cache's limit (100,000; beyond it the older half is "
                 "dropped), so the fresh process holds exactly those N keys.")
    if sy_targets:
        L.append("- Ready: the bench forks the gateway (already pinned, no exec in between) and polls "
                 "`GET /health/liveliness` in a tight loop from the other CPU until a 200. The gateway runs with "
                 "Postgres and Redis; a first, untimed start applies the migrations (and makes the virtual key), so "
                 "every timed start finds the schema in place.")
        L.append("- Postgres 15 and Redis: private, throw-away servers (`scripts/services.sh start DIR --ephemeral`) "
                 "on loopback, data in the bench's temp dir, on the server CPU; with the key cached no request "
                 "waits for them (the gateway pings Postgres once a second and refreshes a cached key in the "
                 "background once a minute).")
    L.append("- Every server listens on 127.0.0.1 on ports chosen at run time; each run is bounded by its "
             "duration; every process is stopped at the end.")
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/run.sh", description="Switchyard benchmark suite.")
    p.add_argument("--quick", action="store_true", help="fewer scenarios, 2 rounds × 2 s (about 2 min)")
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                   help=f"comma list of: {', '.join(TARGET_NAMES)} (default: {','.join(DEFAULT_TARGETS)}); "
                        "switchyard = virtual key + router with Postgres and Redis, switchyard-mk = the same "
                        "gateway setup authenticated with the master key, switchyard-base = the switchyard "
                        "setup with the binary in SWITCHYARD_BASE_BIN (before/after a change, in one run), "
                        "switchyard-nospend = the switchyard setup with the cost logger off, "
                        "switchyard-nospendlogs = the same with disable_spend_logs (totals and rollups, no rows), "
                        "switchyard-cache-mem / -cache-redis = every request a response-cache hit from memory / "
                        "from Redis alone, switchyard-cache-redis-spread = Redis hits over 2,000 bodies (not coalesced), "
                        "switchyard-unique / -cache-miss = every request a body of its own "
                        "(bench/post_unique.lua), cache off / on (all misses), "
                        "switchyard-nometrics = the switchyard setup with Prometheus metrics off, "
                        "switchyard-callback = the switchyard setup with metrics and a generic_api callback "
                        "to a live receiver, switchyard-callback-down = the same with the receiver down")
    p.add_argument("--scenarios", default="",
                   help="comma list, e.g. json-1k-64c,sse-1k-1c (default: all 12; --quick: 5)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per (scenario, target) (default 3; quick 2)")
    p.add_argument("--duration", type=int, default=None, help="seconds per wrk run (default 3; quick 2)")
    p.add_argument("--ttfb-requests", type=int, default=None, help="TTFB samples per target and round "
                   "(default 2000; quick 500)")
    p.add_argument("--ready-runs", type=int, default=None, help="gateway starts timed (default 5; quick 3)")
    p.add_argument("--cached-keys", type=int, default=CACHED_KEYS,
                   help=f"virtual keys for the 'RSS with N keys cached' figure (default {CACHED_KEYS:,}; 0: skip; "
                        "needs the switchyard target)")
    p.add_argument("--cached-keys-timeout", type=float, default=300,
                   help="seconds allowed to use them all (default 300)")
    p.add_argument("--client-cpus", default=None, help="CPUs of the load generator (default: 1)")
    p.add_argument("--server-cpus", default=None, help="CPUs of the servers (default: 0)")
    p.add_argument("--db-cpus", default=None, help="CPUs of Postgres (default: the servers'; e.g. 1 to keep "
                   "the database off the gateway's core, as on a separate database host)")
    p.add_argument("--redis-cpus", default=None, help="CPUs of Redis (default: the servers'; e.g. 1 to keep "
                   "Redis off the gateway's core, as on a Redis host of its own)")
    p.add_argument("--wrk-threads", type=int, default=0, help="wrk threads at 64 conn (default: client CPUs)")
    p.add_argument("--max-minutes", type=float, default=30, help="hard stop for the whole run (default 30)")
    p.add_argument("--write-docs", action="store_true", help="also write docs/benchmarks.md")
    p.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    p.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.rounds = a.rounds or (2 if a.quick else 3)
    a.duration = a.duration or (2 if a.quick else 3)
    a.ttfb_requests = a.ttfb_requests or (500 if a.quick else 2000)
    a.ready_runs = a.ready_runs or (3 if a.quick else 5)
    return a


def cpu_list(s: str) -> set[int]:
    out = set()
    for part in s.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.update(range(int(lo), int(hi) + 1))
        elif part.strip():
            out.add(int(part))
    return out


def find_bin(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                      None)
    if not path:
        raise BenchError(f"{name} not found (./bench/run.sh installs it)")
    return path


def machine_busy_check(seconds: float = 1.0) -> str | None:
    a = core_times()
    time.sleep(seconds)
    b = core_times()
    busy = sum(b[c][0] - a[c][0] for c in b) / CLK_TCK / seconds
    if busy > 0.15:
        return (f"the machine was busy before the run ({100 * busy:.0f}% of a core used by other processes): "
                f"figures are noisier than usual")
    return None


def main(argv) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    ncpu = os.cpu_count() or 1
    if args.client_cpus is None:
        args.client_cpus = "1" if ncpu >= 2 else "0"
    if args.server_cpus is None:
        args.server_cpus = "0"
    client_cpus, server_cpus = cpu_list(args.client_cpus), cpu_list(args.server_cpus)
    targets_wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    for t in targets_wanted:
        if t not in TARGET_NAMES:
            raise BenchError(f"unknown target '{t}' ({', '.join(TARGET_NAMES)})")
    by_name = {s.name: s for s in ALL_SCENARIOS}
    wanted_sc = [s.strip() for s in args.scenarios.split(",") if s.strip()] or (
        QUICK_SCENARIOS if args.quick else [s.name for s in ALL_SCENARIOS])
    for s in wanted_sc:
        if s not in by_name:
            raise BenchError(f"unknown scenario '{s}'; known: {', '.join(by_name)}")
    scenarios = [s for s in ALL_SCENARIOS if s.name in wanted_sc]

    nginx_bin, wrk_bin = find_bin("nginx"), find_bin("wrk")
    tmp = args.tmp or tempfile.mkdtemp(prefix="switchyard-bench.")
    os.chmod(tmp, 0o755)  # nginx workers run as an unprivileged user when we are root
    procs = Procs(tmp, server_cpus)
    os.sched_setaffinity(0, client_cpus)

    def on_signal(signum, _frame):
        log(f"{signal.Signals(signum).name}: stopping everything the bench started")
        raise SystemExit(128 + signum)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    watchdog = threading.Timer(args.max_minutes * 60, lambda: os.kill(os.getpid(), signal.SIGTERM))
    watchdog.daemon = True
    watchdog.start()

    targets: list[Target] = []
    upstream = None
    services = Services(procs, tmp)
    try:
        busy_warning = machine_busy_check()
        if busy_warning:
            log("warning: " + busy_warning)
        json_body, sse_body = chat_json_body(), chat_sse_body()
        msg_json_body, msg_sse_body = messages_json_body(), messages_sse_body()
        gem_json_body, gem_sse_body = gemini_json_body(), gemini_sse_body()
        oll_json_body, oll_ndjson_body = ollama_json_body(), ollama_ndjson_body()
        coh_json_body, coh_sse_body = cohere_json_body(), cohere_sse_body()
        for body in (json_body, sse_body, msg_json_body, msg_sse_body, gem_json_body, gem_sse_body, oll_json_body,
                     oll_ndjson_body, coh_json_body, coh_sse_body):
            assert "'" not in body and "$" not in body and "\\" not in body
        up_ports = {"json": free_port(), "sse": free_port()}
        bedrock_stream_file = os.path.join(tmp, "bedrock-converse-stream.bin")
        with open(bedrock_stream_file, "wb") as f:
            f.write(bedrock_eventstream_body())
        upstream = Nginx(procs, nginx_bin, tmp, "upstream",
                         UPSTREAM_SERVERS.format(port=up_ports["json"], ctype="application/json",
                                                 payload=nginx_return(json_body),
                                                 messages_payload=nginx_return(msg_json_body),
                                                 gemini_payload=nginx_return(gem_json_body),
                                                 ollama_ctype="application/json",
                                                 ollama_payload=nginx_return(oll_json_body),
                                                 bedrock_locations=bedrock_locations(bedrock_json_body()),
                                                 cohere_payload=nginx_return(coh_json_body)) +
                         UPSTREAM_SERVERS.format(port=up_ports["sse"], ctype="text/event-stream",
                                                 payload=nginx_return(sse_body),
                                                 messages_payload=nginx_return(msg_sse_body),
                                                 gemini_payload=nginx_return(gem_sse_body),
                                                 ollama_ctype="application/x-ndjson",
                                                 ollama_payload=nginx_return(oll_ndjson_body),
                                                 bedrock_locations=bedrock_locations(stream_file=bedrock_stream_file),
                                                 cohere_payload=nginx_return(coh_sse_body)))
        log(f"fake upstream: nginx on 127.0.0.1:{up_ports['json']} (JSON) and :{up_ports['sse']} (SSE)")
        upstream.start(list(up_ports.values()))

        binary = os.environ.get("SWITCHYARD_BIN") or os.path.join(ROOT, "build/release/src/switchyard")
        # switchyard-base: another build of the gateway (SWITCHYARD_BASE_BIN, e.g. the
        # commit before a change) measured in the same run, for before/after figures.
        base_binary = os.environ.get("SWITCHYARD_BASE_BIN", "")
        if {"switchyard-base", "switchyard-2w-base"} & set(targets_wanted) and not os.access(base_binary, os.X_OK):
            raise BenchError("--targets switchyard-base / switchyard-2w-base need SWITCHYARD_BASE_BIN (a gateway binary)")
        if any(t.startswith("switchyard") for t in targets_wanted):
            if not os.access(binary, os.X_OK):
                raise BenchError(f"no gateway binary at {binary} (set SWITCHYARD_BIN, or --targets direct,nginx)")
            services.start()
            log(f"Postgres and Redis for the gateway: {services.database_url}, {services.redis_url}")
            if args.db_cpus is not None:
                services.pin_db(cpu_list(args.db_cpus))
                log(f"Postgres pinned to CPU {args.db_cpus}")
            if args.redis_cpus is not None:
                services.pin_redis(cpu_list(args.redis_cpus))
                log(f"Redis pinned to CPU {args.redis_cpus}")

        def gateway(**kw) -> SwitchyardTarget:
            return SwitchyardTarget(procs, binary, tmp, up_ports, services=services, **kw)

        def unique(t: SwitchyardTarget) -> SwitchyardTarget:
            t.unique_bodies = True
            return t

        def spread(t: SwitchyardTarget) -> SwitchyardTarget:
            t.unique_bodies = True
            t.cycle_bodies = 2000
            return t

        # Every target, in the order they alternate. A new stage of the gateway is one more
        # entry (and its name in TARGET_NAMES), e.g.
        #   "switchyard-x": lambda: gateway(name="switchyard-x", label="SWITCHYARD+X",
        #       stages="virtual key, router, x", extra_config="general_settings: {...}\n", virtual_key=True),
        vk = lambda name="switchyard", label="SWITCHYARD": gateway(
            name=name, label=label, stages="virtual key, router; Postgres and Redis", virtual_key=True)
        factories = {
            "direct": lambda: DirectTarget(upstream, up_ports),
            "nginx": lambda: NginxHopTarget(procs, nginx_bin, tmp, up_ports),
            "switchyard": vk,
            # --num_workers 2 (docs/deploy.md, "Several workers"): the switchyard setup as two
            # worker processes on one port; CPU counts the parent and both workers.
            "switchyard-2w": lambda: gateway(
                name="switchyard-2w", label="SWITCHYARD (2 workers)",
                stages="virtual key, router; Postgres and Redis; --num_workers 2", virtual_key=True,
                extra_args=["--num_workers", "2"]),
            # switchyard-2w with the binary in SWITCHYARD_BASE_BIN (a change to workers, in one run).
            "switchyard-2w-base": lambda: SwitchyardTarget(
                procs, base_binary, tmp, up_ports, services=services, name="switchyard-2w-base",
                label="SWITCHYARD (2 workers, base build)", stages="virtual key, router; Postgres and Redis; "
                f"--num_workers 2; binary {base_binary}", virtual_key=True, extra_args=["--num_workers", "2"]),
            "switchyard-mk": lambda: gateway(name="switchyard-mk", label="SWITCHYARD (master key)",
                                             stages="master key, router; Postgres and Redis"),
            "switchyard-base": lambda: SwitchyardTarget(
                procs, base_binary, tmp, up_ports, services=services, name="switchyard-base",
                label="SWITCHYARD (base build)", stages="virtual key, router; Postgres and Redis; "
                f"binary {base_binary}", virtual_key=True),
            "switchyard-nospend": lambda: gateway(
                name="switchyard-nospend", label="SWITCHYARD (no cost logger)",
                stages="virtual key, router; Postgres and Redis; cost logger off", virtual_key=True,
                extra_env={"SWITCHYARD_DISABLE_COST_LOGGER": "1"}),
            # Spend logging off as LiteLLM's switch has it: no spend_logs rows, the running
            # totals and daily rollups still written (budgets need them).
            "switchyard-nospendlogs": lambda: gateway(
                name="switchyard-nospendlogs", label="SWITCHYARD (disable_spend_logs)",
                stages="virtual key, router; Postgres and Redis; disable_spend_logs: totals and rollups only",
                virtual_key=True, extra_config="general_settings:\n  disable_spend_logs: true\n"),
            "switchyard-nometrics": lambda: gateway(
                name="switchyard-nometrics", label="SWITCHYARD (no metrics)",
                stages="virtual key, router; Postgres and Redis; metrics off", virtual_key=True,
                extra_env={"SWITCHYARD_DISABLE_METRICS": "1"}),
        }
        # The response cache (docs/cache.md). Hits: every request of a run is the same, so all
        # but the first are answered from the memory tier, or from Redis alone (memory tier 0).
        # All-miss: every request has a body of its own, cache on vs off, both with the same
        # wrk script.
        cache_on = lambda t: "litellm_settings: {cache: true, cache_params: {type: " + t + "}}\n"
        factories.update({
            "switchyard-cache-mem": lambda: gateway(
                name="switchyard-cache-mem", label="SWITCHYARD (cache hits, memory)",
                stages="virtual key, router; Postgres and Redis; response cache, every request a memory hit",
                virtual_key=True, extra_config=cache_on("local")),
            "switchyard-cache-redis": lambda: gateway(
                name="switchyard-cache-redis", label="SWITCHYARD (cache hits, Redis)",
                stages="virtual key, router; Postgres and Redis; response cache without a memory tier, "
                "every request a Redis hit", virtual_key=True, extra_config=cache_on("redis"),
                extra_env={"SWITCHYARD_CACHE_MEMORY_MB": "0", "SWITCHYARD_CACHE_REDIS_TIMEOUT_MS": "100"}),
            "switchyard-cache-redis-spread": lambda: spread(gateway(
                name="switchyard-cache-redis-spread", label="SWITCHYARD (cache hits, Redis, 2,000 bodies)",
                stages="virtual key, router; Postgres and Redis; response cache without a memory tier, "
                "bodies cycling through 2,000 (after the first pass every request a Redis hit of its own)",
                virtual_key=True, extra_config=cache_on("redis"),
                extra_env={"SWITCHYARD_CACHE_MEMORY_MB": "0", "SWITCHYARD_CACHE_REDIS_TIMEOUT_MS": "100"})),
            "switchyard-unique": lambda: unique(gateway(
                name="switchyard-unique", label="SWITCHYARD (unique bodies)",
                stages="virtual key, router; Postgres and Redis; every request a body of its own",
                virtual_key=True)),
            "switchyard-cache-miss": lambda: unique(gateway(
                name="switchyard-cache-miss", label="SWITCHYARD (cache, all misses)",
                stages="virtual key, router; Postgres and Redis; response cache on (Redis), every request "
                "a body of its own: a miss, then stored", virtual_key=True, extra_config=cache_on("redis"),
                extra_env={"SWITCHYARD_CACHE_REDIS_TIMEOUT_MS": "100"})),
            # The same with `type: local` (the memory tier alone): a miss's own work in the
            # gateway, without Redis' GET and SET (whose CPU lands on the load generator's core).
            "switchyard-cache-miss-local": lambda: unique(gateway(
                name="switchyard-cache-miss-local", label="SWITCHYARD (cache, local, all misses)",
                stages="virtual key, router; Postgres and Redis; response cache on (type: local), "
                "every request a body of its own: a miss, then stored in memory", virtual_key=True,
                extra_config=cache_on("local"))),
            # Budgets and rate limits (docs/limits.md): the virtual key has a budget and an rpm
            # limit, both far above what a run uses, so requests are drawn from leases (an
            # EVALSHA for every 64 requests or so) and none is refused.
            "switchyard-limits": lambda: gateway(
                name="switchyard-limits", label="SWITCHYARD (budget + rpm limit)",
                stages="virtual key with max_budget and rpm_limit, router; Postgres and Redis; limits "
                "drawn from leases taken in Redis", virtual_key=True,
                key_params={"max_budget": 1e9, "rpm_limit": 1_000_000_000}),
            # The same with leases off (docs/limits.md, "Leases"): one EVALSHA per request.
            "switchyard-limits-nolease": lambda: gateway(
                name="switchyard-limits-nolease", label="SWITCHYARD (budget + rpm limit, no leases)",
                stages="virtual key with max_budget and rpm_limit, router; Postgres and Redis; limits "
                "checked in Redis per request (leases off)", virtual_key=True,
                key_params={"max_budget": 1e9, "rpm_limit": 1_000_000_000},
                extra_env={"SWITCHYARD_LIMITS_LEASE_MS": "0"}),
            # Anthropic's /v1/messages to an Anthropic deployment (the client's bytes pass
            # through), to compare with `switchyard` (chat to an OpenAI deployment) in one run.
            "switchyard-messages": lambda: gateway(
                name="switchyard-messages", label="SWITCHYARD (/v1/messages)",
                stages="virtual key, router; Postgres and Redis; /v1/messages to an Anthropic deployment",
                virtual_key=True, messages=True),
        })
        # Metrics on (the default) and one logging callback (generic_api, docs/observability.md)
        # batching every request's event, with its content, to a live receiver (the upstream
        # nginx answers 200): compare with switchyard-nometrics and switchyard in one run.
        def with_callback(t: SwitchyardTarget) -> SwitchyardTarget:
            t.callback_name = "generic_api"
            return t
        factories["switchyard-callback"] = lambda: with_callback(gateway(
            name="switchyard-callback", label="SWITCHYARD (metrics + generic_api callback)",
            stages="virtual key, router; Postgres and Redis; metrics on; generic_api callback to a live receiver",
            virtual_key=True, extra_config="litellm_settings: {callbacks: [generic_api]}\n",
            extra_env={"GENERIC_LOGGER_ENDPOINT": f"http://127.0.0.1:{up_ports['json']}/callbacks"}))
        # The same with the receiver down (nothing listens on its port): every batch fails,
        # is retried with backoff and dropped; requests must not notice.
        factories["switchyard-callback-down"] = lambda: gateway(
            name="switchyard-callback-down", label="SWITCHYARD (metrics + callback, receiver down)",
            stages="virtual key, router; Postgres and Redis; metrics on; generic_api callback to a closed port",
            virtual_key=True, extra_config="litellm_settings: {callbacks: [generic_api]}\n",
            extra_env={"GENERIC_LOGGER_ENDPOINT": f"http://127.0.0.1:{free_port()}/callbacks"})
        # JWT auth (docs/sso.md): every request carries the same RS256 token from an identity
        # provider whose JWKS a small HTTP server of this script publishes; compare with
        # `switchyard` (a virtual key) in one run.
        def jwt_target() -> SwitchyardTarget:
            jwks, token = jwt_material(tmp)
            jwks_url = serve_jwks(jwks)
            t = gateway(
                name="switchyard-jwt", label="SWITCHYARD (JWT auth)",
                stages="JWT (RS256, JWKS in memory), router; Postgres and Redis",
                extra_config="general_settings:\n  enable_jwt_auth: true\n"
                             "  litellm_jwtauth: {user_id_jwt_field: sub, team_id_jwt_field: team}\n",
                extra_env={"JWT_PUBLIC_KEY_URL": jwks_url, "JWT_AUDIENCE": "switchyard-bench"})
            t.key = token
            return t
        factories["switchyard-jwt"] = jwt_target
        assert list(factories) == TARGET_NAMES
        targets = [make() for name, make in factories.items() if name in targets_wanted]
        for t in targets:
            if isinstance(t, SwitchyardTarget):
                t.start(args.ready_runs)
                log(f"{t.label}: ready in {', '.join(f'{x:.1f}' for x in t.ready_ms)} ms; "
                    f"RSS idle {fmt_mb(t.rss_idle_kb)}; port {t.listen_port}")
            else:
                t.start()
            check_target(t)
        hop_rss_idle = rss_kb(next(t for t in targets if t.name == "nginx").pids()) \
            if any(t.name == "nginx" for t in targets) else None

        bench = Bench(args, wrk_bin, upstream, server_cpus, client_cpus, services)
        n_runs = len(scenarios) * len(targets) * args.rounds
        log(f"{len(scenarios)} scenarios × {len(targets)} targets × {args.rounds} rounds × {args.duration} s "
            f"≈ {n_runs * args.duration / 60:.1f} min of load; pinning: wrk on CPU {args.client_cpus}, "
            f"servers on CPU {args.server_cpus}")
        warm = by_name["json-1k-64c"]
        for t in targets:  # warm-up, not recorded
            bench.run_one(t, warm, 1, -1, record=False)
        done = 0
        for sc in scenarios:
            for rnd in range(args.rounds):
                order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
                for t in order:
                    r = bench.run_one(t, sc, args.duration, rnd)
                    done += 1
                    log(f"[{done}/{n_runs}] {sc.name:<13} {t.name:<11} round {rnd + 1}: {r['rps']:>9,.0f} rps  "
                        f"p50 {r['p50_us']:>6} µs  p99 {r['p99_us']:>6} µs  "
                        f"cpu {r['cpu_ticks'] / CLK_TCK * 1e6 / max(1, r['requests']):6.1f} µs/req  "
                        f"db {r['db_ticks'] / CLK_TCK * 1e6 / max(1, r['requests']):5.1f} µs/req  "
                        f"redis {r['redis_ticks'] / CLK_TCK * 1e6 / max(1, r['requests']):4.1f} µs/req  "
                        f"drained in {r['drain_s']:.1f} s"
                        f"{'  errors ' + str(r['errors']) if r['errors'] else ''}")
        agg = {}
        for sc in scenarios:
            for t in targets:
                agg[(sc.name, t.name)] = aggregate([r for r in bench.runs
                                                    if r["scenario"] == sc.name and r["target"] == t.name])

        # Streaming time to first byte, interleaved request by request.
        ttfb_raw: dict[str, list[float]] = {t.name: [] for t in targets}
        ttfb_samples(targets, 50)  # warm the connection paths
        for rnd in range(args.rounds):
            for name, xs in ttfb_samples(targets, args.ttfb_requests).items():
                ttfb_raw[name] += xs
        ttfb = {}
        for name, xs in ttfb_raw.items():
            xs.sort()
            q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
            ttfb[name] = {"n": len(xs), "p50": statistics.median(xs), "p90": q(0.90), "p99": q(0.99)}
        log("TTFB p50: " + ", ".join(f"{k} {v['p50']:.0f} µs" for k, v in ttfb.items()))

        time.sleep(1.0)
        rss_after = {t.name: rss_kb(t.pids()) for t in targets if isinstance(t, SwitchyardTarget)}
        for t in targets:
            if isinstance(t, SwitchyardTarget) and t.proc.poll() is not None:
                raise BenchError(f"{t.label} exited during the run:\n{t.log_tail()}")

        # RSS with N keys cached: a fresh gateway set up like the `switchyard` target, once the
        # measured targets are idle (they stay up, untouched).
        cached_keys = None
        if args.cached_keys > 0 and "switchyard" in targets_wanted:
            cached_keys = measure_cached_keys(lambda: vk("switchyard-keys", "SWITCHYARD (keys)"), services,
                                              args.cached_keys, args.cached_keys_timeout)

        date = dt.datetime.now(dt.timezone.utc)
        versions = [sh([nginx_bin, "-v"]).replace("nginx version: ", ""), sh([wrk_bin, "-v"]).split(" [")[0]]
        for t in targets:
            if isinstance(t, SwitchyardTarget):
                versions.append(f"{t.label}: `{sh([t.bin, '--version'])}` ({os.path.relpath(t.bin, ROOT)})")
        threads = max(1, min(args.wrk_threads or len(client_cpus), 64))
        ctx = {
            "args": args, "targets": targets, "agg": agg, "runs": bench.runs, "ttfb": ttfb, "scenarios": scenarios,
            "date": date.strftime("%Y-%m-%d %H:%M"), "elapsed_s": time.monotonic() - t_start,
            "machine": machine_info(), "git": git_rev(), "versions": "; ".join(versions),
            "command": args.command_line or "./bench/run.sh " + " ".join(argv),
            "client_cpus": args.client_cpus, "server_cpus": args.server_cpus, "db_cpus": args.db_cpus, "redis_cpus": args.redis_cpus,
            "wrk_threads_desc": f"{threads} thread{'s' if threads > 1 else ''} at 64 conn, 1 at 1 conn",
            "busy_warning": busy_warning, "hop_rss_idle_kb": hop_rss_idle, "rss_after": rss_after,
            "cached_keys": cached_keys,
            "json_len": len(json_body), "sse_len": len(sse_body),
            "example_cmd": " ".join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x
                                    for x in bench.wrk_cmd(targets[0], by_name["json-1k-64c"], args.duration)),
        }
        report = render(ctx)
        stamp = date.strftime("%Y%m%dT%H%M%SZ")
        out_dir = os.path.join(BENCH_DIR, "results")
        os.makedirs(out_dir, exist_ok=True)
        md_path = os.path.join(out_dir, f"{stamp}.md")
        with open(md_path, "w") as f:
            f.write(report)
        with open(os.path.join(out_dir, f"{stamp}.json"), "w") as f:
            json.dump({"date": ctx["date"], "command": ctx["command"], "machine": ctx["machine"], "git": ctx["git"],
                       "runs": bench.runs, "ttfb": ttfb,
                       "aggregate": {f"{k[0]}/{k[1]}": v for k, v in agg.items()},
                       "switchyard": {t.name: {"ready_ms": t.ready_ms, "first_ready_ms": t.first_ready_ms,
                                               "rss_idle_kb": t.rss_idle_kb, "rss_after_kb": rss_after.get(t.name)}
                                      for t in targets if isinstance(t, SwitchyardTarget)},
                       "cached_keys": cached_keys}, f, indent=1)
        print(report, flush=True)
        log(f"results: {os.path.relpath(md_path, ROOT)} (+ .json with every run)")
        if args.write_docs:
            docs = os.path.join(ROOT, "docs", "benchmarks.md")
            with open(docs, "w") as f:
                f.write(report)
            log(f"wrote {os.path.relpath(docs, ROOT)}")
        return 0
    except BenchError as e:
        log(f"error: {e}")
        if upstream and upstream.error_log_tail():
            log("fake upstream error.log:\n" + upstream.error_log_tail())
        return 1
    finally:
        watchdog.cancel()
        procs.stop_all()
        services.stop()
        if not args.tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
