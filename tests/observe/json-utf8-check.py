#!/usr/bin/env python3
"""Checks JSON documents against Python's strict reading of them.

    tests/observe/json-utf8-check.py FILE

FILE holds pairs of lines: the hex of a byte string, then the JSON text the
library wrote for {"e": that string}. Each JSON line must decode as strict
UTF-8, parse with json.loads, and hold exactly what Python's own
bytes.decode("utf-8", "replace") makes of the input (one U+FFFD per maximal
ill-formed subpart, as the Unicode standard recommends).
Exit 0 when every pair passes; 1 with the first failures listed otherwise.
"""

import json
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} FILE", file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines or len(lines) % 2:
        print("json-utf8-check: expected pairs of lines", file=sys.stderr)
        return 2
    failures = []
    for n in range(0, len(lines), 2):
        raw = bytes.fromhex(lines[n].decode("ascii"))
        doc = lines[n + 1]
        try:
            # Strict decoding first: json.loads(bytes) would let surrogates through.
            value = json.loads(doc.decode("utf-8", "strict"))["e"]
        except (UnicodeDecodeError, ValueError, KeyError) as e:
            failures.append(f"input {raw!r}: {e}")
            continue
        expected = raw.decode("utf-8", "replace")
        if value != expected:
            failures.append(f"input {raw!r}: read back {value!r}, expected {expected!r}")
    for f in failures[:10]:
        print(f"json-utf8-check: {f}", file=sys.stderr)
    if failures:
        print(f"json-utf8-check: {len(failures)} of {len(lines) // 2} failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
