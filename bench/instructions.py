#!/usr/bin/env python3
"""Instructions per request, feature on and off: the gateway under valgrind's callgrind.

    SWITCHYARD_BIN=build/release/src/switchyard ./bench/instructions.py [--variants a,b] [--requests N]

CPU time per request (bench/run.sh) moves with the machine's load by 10-20%; the number of
instructions the gateway executes per request does not. This runs the gateway with the
master key and no Postgres (but for the spend variants) or Redis in front of an nginx fake upstream (the same chat
answer as bench.py's, and `POST /callbacks` for the callback receiver), sends
non-stream 1 KB chat requests over 4 keep-alive connections, waits for the queued
callback batches to be sent, stops it and reads the instruction total of every thread. Variants:

    nometrics   SWITCHYARD_DISABLE_METRICS=1
    metrics     metrics on (the default)
    callback    metrics + a generic_api callback to the live receiver
    otel        metrics + the otel callback to the live receiver (OTLP/HTTP JSON)
    spend       metrics + a throw-away Postgres (scripts/services.sh): the cost logger's
                rows and totals (the writer thread's COPY included; Postgres's own work not)
    nospend     the same with SWITCHYARD_DISABLE_COST_LOGGER=1
    cache-mem   metrics + the response cache, memory only: every request a hit
    cache-redis metrics + the response cache in a throw-away Redis, no memory tier: hits
    cache-miss  the same with the memory tier, each request's body unique: every one a miss
    cache-miss-local  cache-miss with type: local and a 1 MB memory tier (every store evicts)
    unique-intl / cache-miss-local-intl  unique / cache-miss-local with the prompt in
                French and Japanese (UTF-8, typographic quotes, an emoji): non-ASCII text
    cache-mem-vkey  as bench.py's memory-hit target: vkey's setup + the memory tier, all hits
    unique      metrics, no cache, each request's body unique (cache-miss's baseline)
    limits      a throw-away Postgres and Redis; a virtual key with max_budget and rpm_limit
    limits-nolease  the same with leases off (SWITCHYARD_LIMITS_LEASE_MS=0)
    vkey        the same with a virtual key without limits (limits' baseline)
    team-vkey   vkey's setup, the key's user a member of a team (no budgets)
    team-member the same, the membership with a `max_budget_in_team` (the team-member level)
    stream      vkey's setup, stream requests (20 SSE events from the upstream, each with
                `"usage":null` as OpenAI's when asked for usage), no usage asked by the client
    stream-usage  the same with `stream_options: {include_usage: true}`
    stream-anthropic  stream's requests to an Anthropic deployment (22 Messages events translated)
    stream-gemini  stream's requests to a Gemini deployment (20 streamGenerateContent events
                translated, each with a text part, usageMetadata, modelVersion and responseId)
    stream-ollama  stream's requests to an ollama_chat deployment (17 /api/chat NDJSON lines translated)
    stream-bedrock  stream's requests to a Bedrock deployment (SigV4-signed converse-stream; 24
                binary event-stream messages translated: messageStart, 20 text deltas,
                contentBlockStop, messageStop, metadata with the usage)
    stream-cohere  stream's requests to a cohere_chat deployment (24 v2 chat SSE events translated:
                message-start, content-start, 20 content-delta, content-end, message-end)

callgrind_control needs vgdb, which this machine's valgrind does not offer, so each
variant runs twice, with `--warmup` and with `--warmup` + `--requests` requests, and the
difference of the two totals is the requests' share.

valgrind runs the code about 50x slower, so this measures work, not speed: a memcpy
counts by its instructions, SHA-256 has no SHA extensions. Figures in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the bodies and the nginx config of the main bench)

VARIANTS = {
    "nometrics": ({"SWITCHYARD_DISABLE_METRICS": "1"}, ""),
    "metrics": ({}, ""),
    "callback": ({"GENERIC_LOGGER_ENDPOINT": "http://127.0.0.1:{up}/callbacks"},
                 "litellm_settings: {callbacks: [generic_api]}\n"),
    "otel": ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:{up}/callbacks"},
             "litellm_settings: {callbacks: [otel]}\n"),
    # With a database (a throw-away Postgres started for them): the cost logger on and off.
    "spend": ({}, ""),
    "nospend": ({"SWITCHYARD_DISABLE_COST_LOGGER": "1"}, ""),
    # The response cache (a throw-away Redis for the Redis ones): every request a hit from
    # memory, a hit from Redis (no memory tier), or a miss (each request's body unique).
    "cache-mem": ({}, "litellm_settings: {cache: true, cache_params: {type: local}}\n"),
    "cache-redis": ({"SWITCHYARD_CACHE_MEMORY_MB": "0", "SWITCHYARD_CACHE_REDIS_TIMEOUT_MS": "1000"},
                    "litellm_settings: {cache: true, cache_params: {type: redis, host: 127.0.0.1, port: {redis_port}}}\n"),
    "cache-miss": ({"SWITCHYARD_CACHE_REDIS_TIMEOUT_MS": "1000"},
                   "litellm_settings: {cache: true, cache_params: {type: redis, host: 127.0.0.1, port: {redis_port}}}\n"),
    # The same misses with `type: local`: each answer stored in the memory tier, which is
    # full after the first requests, so every store evicts the oldest entry.
    "cache-miss-local": ({"SWITCHYARD_CACHE_MEMORY_MB": "1"},
                         "litellm_settings: {cache: true, cache_params: {type: local}}\n"),
}
# Budgets and rate limits (a throw-away Postgres and Redis): a virtual key with a budget
# and an rpm limit, against a virtual key without limits.
VARIANTS["limits"] = ({}, "router_settings: {redis_host: 127.0.0.1, redis_port: {redis_port}}\n")
VARIANTS["vkey"] = ({}, "router_settings: {redis_host: 127.0.0.1, redis_port: {redis_port}}\n")
# The same limits without leases: every request's check is one EVALSHA.
VARIANTS["limits-nolease"] = ({"SWITCHYARD_LIMITS_LEASE_MS": "0"},
                              "router_settings: {redis_host: 127.0.0.1, redis_port: {redis_port}}\n")
# bench.py's memory-hit target: a virtual key, Postgres (the spend rows) and Redis, every
# request a hit from the memory tier; `vkey` is its baseline without the cache.
VARIANTS["cache-mem-vkey"] = ({}, VARIANTS["vkey"][1] + VARIANTS["cache-mem"][1])
# bench.py's all-miss pair: the same setup, every request a body of its own, with the
# response cache on (Redis) and off.
VARIANTS["unique-vkey"] = VARIANTS["vkey"]
VARIANTS["cache-miss-vkey"] = (VARIANTS["cache-miss"][0], VARIANTS["vkey"][1] + VARIANTS["cache-miss"][1])
# Streams: vkey's setup; the upstream's SSE answer (bench.py's, 20 events) on a port of its own.
VARIANTS["stream"] = ({}, VARIANTS["vkey"][1])
VARIANTS["stream-usage"] = ({}, VARIANTS["vkey"][1])
# `stream-anthropic`: the same stream from an Anthropic deployment (its /v1/messages event
# stream, translated to chat chunks).
VARIANTS["stream-anthropic"] = ({}, VARIANTS["vkey"][1])
# `stream-gemini`: the same from a Gemini deployment (streamGenerateContent?alt=sse).
VARIANTS["stream-gemini"] = ({}, VARIANTS["vkey"][1])
# `stream-ollama`: the same from an ollama_chat deployment (/api/chat, NDJSON).
VARIANTS["stream-ollama"] = ({}, VARIANTS["vkey"][1])
# `stream-bedrock`: the same from a Bedrock deployment (converse-stream, AWS's binary event
# stream; the request signed with SigV4 as for AWS).
VARIANTS["stream-bedrock"] = ({}, VARIANTS["vkey"][1])
# `stream-cohere`: the same from a cohere_chat deployment (v2 chat's typed SSE events).
VARIANTS["stream-cohere"] = ({}, VARIANTS["vkey"][1])
STREAM_VARIANTS = {"stream": b'"stream":true,', "stream-usage": b'"stream":true,"stream_options":{"include_usage":true},',
                   "stream-anthropic": b'"stream":true,', "stream-gemini": b'"stream":true,',
                   "stream-ollama": b'"stream":true,', "stream-bedrock": b'"stream":true,',
                   "stream-cohere": b'"stream":true,'}
# The deployment's model and api_base path (the default: an OpenAI deployment on /v1).
UPSTREAM_MODEL = {"stream-anthropic": ("anthropic/bench-model", ""), "stream-gemini": ("gemini/bench-model", ""),
                  "stream-ollama": ("ollama_chat/bench-model", ""), "stream-bedrock": ("bedrock/bench-model", ""),
                  "stream-cohere": ("cohere_chat/bench-model", "")}
# More litellm_params of the deployment: Bedrock's requests are signed (SigV4) with these;
# Cohere takes no `user` (the bench body's), dropped as LiteLLM's drop_params does.
UPSTREAM_PARAMS = {"stream-bedrock": "      aws_access_key_id: AKIDEXAMPLE\n"
                                     "      aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n"
                                     "      aws_region_name: us-east-1\n",
                   "stream-cohere": "      drop_params: true\n"}
# A key of a team member, with and without the member's budget in the team.
VARIANTS["team-vkey"] = ({}, VARIANTS["vkey"][1])
VARIANTS["team-member"] = ({}, VARIANTS["vkey"][1])
TEAM_VARIANTS = {"team-vkey": {}, "team-member": {"max_budget_in_team": 1000000}}
KEY_BODIES = {"limits": {"max_budget": 1000000, "rpm_limit": 100000000},
              "limits-nolease": {"max_budget": 1000000, "rpm_limit": 100000000}, "vkey": {},
              "cache-mem-vkey": {}, "unique-vkey": {}, "cache-miss-vkey": {}, "stream": {}, "stream-usage": {}, "stream-anthropic": {},
              "stream-gemini": {}, "stream-ollama": {}, "stream-bedrock": {}, "stream-cohere": {}}
DB_VARIANTS = {"spend", "nospend", "limits", "limits-nolease", "vkey", "cache-mem-vkey", "unique-vkey",
               "cache-miss-vkey", "stream", "stream-usage", "stream-anthropic", "stream-gemini", "stream-ollama",
               "stream-bedrock", "stream-cohere", "team-vkey", "team-member"}
REDIS_VARIANTS = {"cache-redis", "cache-miss", "limits", "limits-nolease", "vkey", "cache-mem-vkey",
                  "unique-vkey", "cache-miss-vkey", "stream", "stream-usage", "stream-anthropic", "stream-gemini",
                  "stream-ollama", "stream-bedrock", "stream-cohere", "team-vkey", "team-member"}
# every request's body differs (the cache key)
UNIQUE_VARIANTS = {"cache-miss", "cache-miss-local", "unique", "unique-vkey", "cache-miss-vkey",
                   "unique-intl", "cache-miss-local-intl"}
# Prompts in other languages than English: the same body's prompt (same byte length) in
# French, Japanese, typographic quotes and an emoji, as UTF-8; `unique-intl` is the
# baseline (no cache) of `cache-miss-local-intl`.
VARIANTS["unique-intl"] = ({}, "")  # as `unique`
VARIANTS["cache-miss-local-intl"] = VARIANTS["cache-miss-local"]
INTL_VARIANTS = {"unique-intl", "cache-miss-local-intl"}
INTL_SENTENCE = "Le renard brun rapide saute par-dessus le chien paresseux \u2014 \u00abcaf\u00e9\u00bb, " \
                "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8, \u201cquoted\u201d \U0001f642. "


def intl_body(body: bytes) -> bytes:
    """`body` with its prompt's text (the last message's content) in INTL_SENTENCE's words,
    the same number of bytes, cut at a character's end and padded with spaces."""
    marker = b'"content":"'
    at = body.rfind(marker) + len(marker)
    end = body.rfind(b'"}]}')
    fill = end - at
    text = (INTL_SENTENCE * (fill // len(INTL_SENTENCE) + 1)).encode()[:fill]
    text = text.decode(errors="ignore").encode()
    return body[:at] + text + b" " * (fill - len(text)) + body[end:]
VARIANTS["unique"] = ({}, "")  # the baseline of cache-miss: unique bodies, no cache
DATABASE_URL = ""  # set by main() when a DB variant runs
REDIS_PORT = 0     # set by main() when a Redis variant runs
BODY_STYLE = "compact"  # --body-style
PROMPT = "english"  # --prompt
MASTER = "sk-bench-instructions-master"


def admin_post(port: int, path: str, body: dict) -> dict:
    """A management call with the master key; its JSON answer."""
    import json
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", path, json.dumps(body).encode(),
              {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"{path}: {r.status} {data[:300]!r}")
    return json.loads(data)


def new_key(port: int, body: dict) -> str:
    """A virtual key made with the master key (POST /key/generate)."""
    return admin_post(port, "/key/generate", body)["key"]


def team_member_key(port: int, membership: dict) -> str:
    """A key of a user who is a member of a team (`membership`: extra /team/member_add fields)."""
    team = admin_post(port, "/team/new", {})["team_id"]
    user = admin_post(port, "/user/new", {})["user_id"]
    admin_post(port, "/team/member_add", {"team_id": team, "member": {"user_id": user, "role": "user"}, **membership})
    return new_key(port, {"team_id": team, "user_id": user})


def post_many(port: int, n: int, body: bytes, conns: int = 4, unique: bool = False, key: str = MASTER) -> int:
    """n requests over `conns` keep-alive connections; the number that were not 200. With
    `unique`, each request's body differs (a counter written over the start of its prompt,
    same length)."""
    bad = [0]
    lock = threading.Lock()
    counter = [0]
    marker = b'"content":"' if b'"content":"' in body else b'"content": "'
    at = body.rfind(marker) + len(marker)

    def worker(count: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(count):
            b = body
            if unique:
                with lock:
                    counter[0] += 1
                    tag = b"%012d" % (counter[0] + int(time.time() * 1000) % 10**6 * 10**6)
                b = body[:at] + tag + body[at + len(tag):]
            c.request("POST", "/v1/chat/completions", b,
                      {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                with lock:
                    bad[0] += 1
        c.close()

    threads = [threading.Thread(target=worker, args=(n // conns + (1 if i < n % conns else 0),))
               for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return bad[0]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120, db: bool = False) -> None:
    """Until the gateway answers (and, with `db`, has its database: migrations applied)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway exited ({proc.returncode}) before it was ready")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health/readiness" if db else "/health/liveliness")
            r = c.getresponse()
            if r.status == 200 and (not db or b'"db":"connected"' in r.read()):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the gateway was not ready in time")


def total_instructions(out_file_prefix: str) -> int:
    """Sum of the `summary:`/`totals:` lines of every dump (one per thread) under the prefix."""
    total = 0
    d = os.path.dirname(out_file_prefix)
    base = os.path.basename(out_file_prefix)
    for name in os.listdir(d):
        if not name.startswith(base):
            continue
        with open(os.path.join(d, name)) as f:
            for line in f:
                m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
                if m:
                    total += int(m.group(1))
                    break
    return total


def run_once(binary: str, variant: str, up_ports: dict[str, int], tmp: str, requests: int, body: bytes) -> int:
    """Instructions of a whole gateway run (start, `requests` requests, the callback batches
    sent, shutdown), summed over its threads."""
    env_extra, extra_config = VARIANTS[variant]
    extra_config = extra_config.replace("{redis_port}", str(REDIS_PORT))
    port = bench.free_port()
    up_port = up_ports["sse" if variant in STREAM_VARIANTS else "json"]
    model, path = UPSTREAM_MODEL.get(variant, ("openai/bench-model", "/v1"))
    cfg = os.path.join(tmp, f"{variant}.yaml")
    with open(cfg, "w") as f:
        f.write("model_list:\n"
                "  - model_name: bench-model\n"
                "    litellm_params:\n"
                f"      model: {model}\n"
                f"      api_base: http://127.0.0.1:{up_port}{path}\n"
                "      api_key: sk-upstream\n" + UPSTREAM_PARAMS.get(variant, "") +
                f"general_settings:\n  master_key: {MASTER}\n" +
                (f"  database_url: {DATABASE_URL}\n" if variant in DB_VARIANTS else "") + extra_config)
    env = dict(os.environ)
    env.update({k: v.format(up=up_port) for k, v in env_extra.items()})
    env["SWITCHYARD_CALLBACK_FLUSH_MS"] = "200"
    # The malloc tuning the gateway gives itself by re-executing (src/main.cpp), given here:
    # valgrind does not follow the exec.
    # And memcpy/memset without `rep movsb`/`rep stosb`: callgrind counts every iteration of
    # a rep-prefixed instruction as one instruction (a byte each), so a 2 KB copy would
    # count 2,000 where the CPU runs a few dozen; with vector loops the count follows the
    # work (both variants measured the same way).
    env["GLIBC_TUNABLES"] = ("glibc.malloc.tcache_count=1024:glibc.cpu.x86_rep_movsb_threshold=4294967295:"
                             "glibc.cpu.x86_rep_stosb_threshold=4294967295")
    env["SWITCHYARD_MALLOC_TUNED"] = "1"
    for k in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL", "LITELLM_MASTER_KEY"):
        env.pop(k, None)
    prefix = os.path.join(tmp, f"cg-{variant}-{requests}.out")
    for name in os.listdir(tmp):  # an earlier round's dumps (total_instructions sums them all)
        if name.startswith(os.path.basename(prefix)):
            os.remove(os.path.join(tmp, name))
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p",
                             "--separate-threads=yes", "--dump-instr=no",
                             binary, "--config", cfg, "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, f"{variant}.log"), "w"),
                            start_new_session=True)
    try:
        wait_ready(port, proc, db=variant in DB_VARIANTS)
        if variant in TEAM_VARIANTS:
            key = team_member_key(port, TEAM_VARIANTS[variant])
        else:
            key = new_key(port, KEY_BODIES[variant]) if variant in KEY_BODIES else MASTER
        if variant in STREAM_VARIANTS:
            body = body.replace(b'"stream":false,', STREAM_VARIANTS[variant], 1)
        if variant in INTL_VARIANTS or PROMPT == "intl":
            body = intl_body(body)
        if BODY_STYLE == "python":
            body = json.dumps(json.loads(body)).encode()
        bad = post_many(port, requests, body, unique=variant in UNIQUE_VARIANTS, key=key)
        if bad:
            raise SystemExit(f"{variant}: {bad} of {requests} requests failed (see {tmp}/{variant}.log)")
        time.sleep(1.0)  # the last callback batch is sent (flush every 200 ms), the last spend batch written
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    total = total_instructions(prefix)
    if total == 0:
        raise SystemExit(f"{variant}: no callgrind output under {prefix}*")
    return total


def measure(binary: str, variant: str, up_ports: dict[str, int], tmp: str, warmup: int, requests: int,
            body: bytes) -> float:
    """Per request: a run of warmup + requests less a run of warmup alone (start-up,
    warm-up and shutdown cancel out)."""
    long_run = run_once(binary, variant, up_ports, tmp, warmup + requests, body)
    short_run = run_once(binary, variant, up_ports, tmp, warmup, body)
    return (long_run - short_run) / requests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="nometrics,metrics,callback")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=1, help="each variant this many times, alternated")
    ap.add_argument("--body-style", choices=["compact", "python"], default="compact",
                    help="python: every request body as Python's json.dumps() writes it by default (what the "
                    "OpenAI Python SDK sent through httpx before 0.28): a space after each ',' and ':', "
                    "every non-ASCII character as a \\u escape")
    ap.add_argument("--prompt", choices=["english", "intl"], default="english",
                    help="intl: every variant's prompt as the -intl variants' (French, Japanese, an emoji)")
    args = ap.parse_args()
    global BODY_STYLE, PROMPT
    BODY_STYLE = args.body_style
    PROMPT = args.prompt
    binary = os.environ.get("SWITCHYARD_BIN", "build/release/src/switchyard")
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no gateway binary at {binary} (set SWITCHYARD_BIN)")
    for tool in ("valgrind", "callgrind_control", "nginx"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/nginx"):
            raise SystemExit(f"{tool} is missing (apt-get install valgrind nginx)")
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v}; known: {', '.join(VARIANTS)}")
    tmp = tempfile.mkdtemp(prefix="sy-instr-")
    procs = bench.Procs(tmp, os.sched_getaffinity(0))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    svc = os.path.join(tmp, "svc")
    try:
        want_db, want_redis = bool(DB_VARIANTS & set(variants)), bool(REDIS_VARIANTS & set(variants))
        if want_db or want_redis:
            global DATABASE_URL, REDIS_PORT
            os.chmod(tmp, 0o755)  # mkdtemp's 0700 keeps the postgres user out
            started = subprocess.run([os.path.join(root, "scripts/services.sh"), "start", svc, "--ephemeral"] +
                                     ([] if want_db else ["--no-postgres"]) + ([] if want_redis else ["--no-redis"]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if started.returncode != 0:
                raise SystemExit(f"could not start the services of the spend/cache variants:\n{started.stderr}")
            with open(os.path.join(svc, "env.sh")) as f:
                env_sh = f.read()
            if want_db:
                DATABASE_URL = re.search(r"^export DATABASE_URL=(\S+)", env_sh, re.M).group(1)
            if want_redis:
                REDIS_PORT = int(re.search(r"REDIS_PORT=(\d+)", env_sh).group(1))
        up_ports = {"json": bench.free_port(), "sse": bench.free_port()}
        bedrock_stream_file = os.path.join(tmp, "bedrock-converse-stream.bin")
        with open(bedrock_stream_file, "wb") as f:
            f.write(bench.bedrock_eventstream_body())
        servers = (bench.UPSTREAM_SERVERS.format(port=up_ports["json"], ctype="application/json",
                                                 payload=bench.nginx_return(bench.chat_json_body()),
                                                 messages_payload=bench.nginx_return(bench.messages_json_body()),
                                                 gemini_payload=bench.nginx_return(bench.gemini_json_body()),
                                                 ollama_ctype="application/json",
                                                 ollama_payload=bench.nginx_return(bench.ollama_json_body()),
                                                 bedrock_locations=bench.bedrock_locations(bench.bedrock_json_body()),
                                                 cohere_payload=bench.nginx_return(bench.cohere_json_body())) +
                   bench.UPSTREAM_SERVERS.format(port=up_ports["sse"], ctype="text/event-stream",
                                                 payload=bench.nginx_return(bench.chat_sse_body(usage_null=True)),
                                                 messages_payload=bench.nginx_return(bench.messages_sse_body()),
                                                 gemini_payload=bench.nginx_return(bench.gemini_sse_body()),
                                                 ollama_ctype="application/x-ndjson",
                                                 ollama_payload=bench.nginx_return(bench.ollama_ndjson_body()),
                                                 bedrock_locations=bench.bedrock_locations(
                                                     stream_file=bedrock_stream_file),
                                                 cohere_payload=bench.nginx_return(bench.cohere_sse_body())))
        nginx = bench.Nginx(procs, shutil.which("nginx") or "/usr/sbin/nginx", tmp, "upstream", servers)
        nginx.start(list(up_ports.values()))
        body = bench.request_body("bench-model", False, 1024)
        results: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                ir = measure(binary, v, up_ports, tmp, args.warmup, args.requests, body)
                results[v].append(ir)
                print(f"[instructions] {v}: {ir / 1000:.1f}k per request", file=sys.stderr, flush=True)
        base = None
        print("| variant | instructions per request | vs the first |")
        print("|---|---|---|")
        for v in variants:
            ir = min(results[v])
            base = base or ir
            print(f"| {v} | {ir / 1000:.1f}k | {100 * (ir / base - 1):+.1f}% |")
    finally:
        procs.stop_all()
        if DATABASE_URL or REDIS_PORT:
            subprocess.run([os.path.join(root, "scripts/services.sh"), "stop", svc],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if os.environ.get("KEEP_TMP") is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
