#!/usr/bin/env python3
"""Writes the text seeds of the fuzz corpora (run from the repository root):

- cache_config, benchmark_config: the TOML examples of docs/configuration.md, whole and one
  table at a time, and the TOML snippets the configuration tests parse;
- server_request: the requests of crates/nfcs-bench/tests/serve.rs in the target's HTTP/1-like
  form, with the target's token;
- pattern: the (pattern, key) pairs of the pattern unit tests, in `arbitrary`'s encoding of the
  target's `Case` (pattern, key, more keys).

The binary seeds (disk segments, codec frames) are written through the real code by the ignored
tests named in fuzz/README.md. Seeds are named; what libFuzzer adds is named by its SHA-1.
"""

import os
import re

CORPUS = "fuzz/corpus"
TOKEN = "nfcs-fuzz-token-0123456789abcdef"  # server_request.rs's TOKEN


def write(target, name, data):
    os.makedirs(f"{CORPUS}/{target}", exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(f"{CORPUS}/{target}/{name}", "wb") as file:
        file.write(data)


def toml_blocks(path):
    blocks, current = [], None
    for line in open(path, encoding="utf-8"):
        if line.startswith("```toml"):
            current = []
        elif line.startswith("```") and current is not None:
            blocks.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def tables(text):
    parts, current = [], []
    for line in text.splitlines(keepends=True):
        if line.startswith("[") and current:
            parts.append("".join(current))
            current = []
        current.append(line)
    if current:
        parts.append("".join(current))
    return parts


def rust_string(literal):
    """The value of a Rust string literal's body (\\n, \\", \\\\ and \\u{..} escapes)."""
    out, index = [], 0
    while index < len(literal):
        if literal[index] == "\\":
            if literal[index + 1] == "u":
                end = literal.index("}", index)
                out.append(chr(int(literal[index + 3 : end], 16)))
                index = end + 1
                continue
            out.append({"n": "\n", "\\": "\\", '"': '"', "t": "\t"}[literal[index + 1]])
            index += 2
            continue
        out.append(literal[index])
        index += 1
    return "".join(out)


TOML_LITERAL = r'"(\[[a-z_.]+\][^"\\]*(?:\\.[^"\\]*)*)"'


def config_seeds():
    cache_doc, bench_doc = toml_blocks("docs/configuration.md")[:2]
    for target, doc, tests in [
        ("cache_config", cache_doc, "crates/nfcs-performance/src/config.rs"),
        ("benchmark_config", bench_doc, "crates/nfcs-bench/tests/config.rs"),
    ]:
        write(target, "docs-full", doc)
        for index, part in enumerate(tables(doc)):
            write(target, f"docs-table-{index}", part)
        literals = sorted(set(re.findall(TOML_LITERAL, open(tests, encoding="utf-8").read())))
        for index, literal in enumerate(literals):
            write(target, f"test-literal-{index}", rust_string(literal))
        write(target, "empty", "")
    write(
        "benchmark_config",
        "serve-node",
        "[serve]\nsample_interval = 0.25\nupkeep_interval = 0.25\nkuramoto_interval = 0.25\n"
        "[memory_profiling]\nprofile_interval = 0.25\n[alerts]\nwindow = 5\n"
        '[cache.disk]\ndirectory = "disk"\n[cache.semantic]\nenabled = false\n'
        "[cache.redis]\nenabled = false\n",
    )


def server_seeds():
    auth = f"Authorization: Bearer {TOKEN}"
    json = "Content-Type: application/json"
    seeds = {
        "put": ("PUT /v1/cache/greeting", [auth, json], '{"value": "hello", "ttl_s": 60}'),
        "get": ("GET /v1/cache/greeting", [auth], ""),
        "get-escaped": ("GET /v1/cache/nothing%20here", [auth], ""),
        "get-no-token": ("GET /v1/cache/greeting", [], ""),
        "get-wrong-token": ("GET /v1/cache/greeting", ["Authorization: Bearer not-the-token-at-all"], ""),
        "delete": ("DELETE /v1/cache/other", [auth], ""),
        "invalidate": ("POST /v1/cache/invalidate", [auth, json], '{"pattern": "cgl_*"}'),
        "invalidate-bad-pattern": ("POST /v1/cache/invalidate", [auth, json], '{"pattern": "["}'),
        "cgl": ("POST /v1/cgl/solve", [auth, json], '{"grid_size": 16, "seed": 1234567}'),
        "cgl-too-large": ("POST /v1/cgl/solve", [auth, json], '{"grid_size": 100000}'),
        "cgl-negative": ("POST /v1/cgl/solve", [auth, json], '{"grid_size": -3}'),
        "policy": ("POST /v1/policy/evaluate", [auth, json],
                   '{"action": "query", "context": {"risk": 2, "agent": "planner", "tokens": 10}}'),
        "policy-empty-action": ("POST /v1/policy/evaluate", [auth, json], '{"action": "", "context": {}}'),
        "semantic-store": ("POST /v1/semantic/store", [auth, json],
                           '{"text": "What policy blocked the deployment?", "response": "rule 7"}'),
        "semantic-find": ("POST /v1/semantic/find_similar", [auth, json],
                          '{"text": "Which policy blocked the deployment?", "threshold": 0.8}'),
        "put-truncated-json": ("PUT /v1/cache/k", [auth, json], '{"value":'),
        "put-array": ("PUT /v1/cache/k", [auth, json], "[1,2]"),
        "put-extra-field": ("PUT /v1/cache/k", [auth, json], '{"value":"v","extra":1}'),
        "put-text-plain": ("PUT /v1/cache/k", [auth, "Content-Type: text/plain"], '{"value":"v"}'),
        "put-negative-ttl": ("PUT /v1/cache/k", [auth, json], '{"value": "v", "ttl_s": -1}'),
        "put-huge-ttl": ("PUT /v1/cache/k", [auth, json], '{"value": "v", "ttl_s": 1e300}'),
        "put-long-key": ("PUT /v1/cache/" + "k" * 5000, [auth, json], '{"value": "v"}'),
        "metrics": ("GET /metrics", [], ""),
        "summary": ("GET /api/summary", [], ""),
        "history": ("GET /api/history?seconds=30", [], ""),
        "history-bad": ("GET /api/history?seconds=-1", [], ""),
        "stream": ("GET /api/stream", [], ""),
        "openapi": ("GET /openapi.json", [], ""),
        "healthz": ("GET /healthz", [], ""),
        "root": ("GET /", [], ""),
        "dashboard": ("GET /dashboard", [], ""),
        "asset": ("GET /assets/dashboard.js", [], ""),
        "favicon": ("GET /favicon.ico", [], ""),
        "not-found": ("GET /v2/nothing", [], ""),
        "method-not-allowed": ("PATCH /healthz", [], ""),
        "head": ("HEAD /v1/cache/greeting", [auth], ""),
        "options": ("OPTIONS /v1/cache/invalidate", [auth], ""),
    }
    for name, (line, headers, body) in seeds.items():
        write("server_request", name, line + "\n" + "".join(h + "\n" for h in headers) + "\n" + body)
    write("server_request", "put-invalid-utf8",
          f"PUT /v1/cache/k\n{auth}\n{json}\n\n".encode() + b"\xff\xfe\x00")


def arbitrary_case(pattern, key, more=()):
    """`Case { pattern, key, more }` as arbitrary 1.x reads it from at most 256 bytes: each
    string's length is the last byte left, its bytes come from the front; each further key is
    a `true` byte, the key and its length byte."""
    pattern, key = pattern.encode(), key.encode()
    rest = b"".join(b"\x01" + m.encode() + bytes([len(m.encode())]) for m in more)
    data = pattern + key + rest + bytes([len(key)]) + bytes([len(pattern)])
    assert len(data) <= 256
    return data


def pattern_seeds():
    source = open("crates/nfcs-cache-core/src/pattern.rs", encoding="utf-8").read()
    pairs = re.findall(r'matches\("((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)"\)', source)
    seen = []
    for pattern, key in pairs:
        pair = (rust_string(pattern), rust_string(key))
        if pair not in seen:
            seen.append(pair)
    for index, (pattern, key) in enumerate(seen):
        write("pattern", f"test-{index:02}", arbitrary_case(pattern, key))
    extra = [
        ("policy_[a-c]?_*", "policy_b7_read", ["policy_d7_read", "policy_"]),
        ("user_?_[ab]", "user_x_b", ["user_\u00e9_a"]),
        ("abc[de", "abcd", []), ("a[]", "a", []), ("a[^]", "a", []), ("abc\\", "abc", []),
        ("[a\\", "a", []), ("a\\**", "a*b", ["a*"]), ("x\\?", "x?", []), ("a[\\]x]", "a]", []),
        ("*", "", []), ("**a**", "a", ["ba", "b"]), ("[--a]", "-", []), ("[a-\\]]", "b", []),
    ]
    for index, (pattern, key, more) in enumerate(extra):
        write("pattern", f"extra-{index:02}", arbitrary_case(pattern, key, more))


if __name__ == "__main__":
    config_seeds()
    server_seeds()
    pattern_seeds()
