#!/usr/bin/env python3
"""Checks the PromQL in docs/operations/ against a real exposition.

    metric-names-check.py --exposition FILE... [--rules FILE]... [--dashboard FILE]...

Every reservoir_* name in an expression must be a series the exposition has
(families, and _bucket/_sum/_count); every label in a selector, or in by()/
without(), must be one those series carry (or job/instance, which Prometheus
adds); a state, reason or le matched literally must be a value the library
writes. A dashboard must be valid JSON (no duplicate keys) and must show every
family of the exposition. Exit 0 when all holds; 1 with every problem listed.
"""

import argparse
import json
import re
import sys

NAME = re.compile(r"\breservoir_[A-Za-z0-9_]*")
SELECTOR = re.compile(r"\b(reservoir_[A-Za-z0-9_]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SAMPLE_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
ADDED_BY_PROMETHEUS = {"job", "instance"}
LIBRARY_LABELS = {"state", "reason", "le"}  # their values are the library's


def read_exposition(paths):
    """series name -> {label: set of values}; and the families (# TYPE)."""
    series, families = {}, set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("# TYPE "):
                    families.add(line.split()[2])
                if not line or line.startswith("#"):
                    continue
                name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
                labels = series.setdefault(name, {})
                rest = line[len(name):]
                if rest.startswith("{"):
                    for label, value in SAMPLE_LABEL.findall(rest[:rest.rindex("}")]):
                        labels.setdefault(label, set()).add(value)
    return series, families


def dashboard_expressions(path, problems):
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        for k in set(keys):
            if keys.count(k) > 1:
                raise ValueError(f"duplicate key {k!r}")
        return dict(pairs)

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f, object_pairs_hook=no_duplicates)
    except ValueError as e:
        problems.append(f"{path}: not valid JSON: {e}")
        return []
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    found.append((f"{where}.{key}", value))
                elif key == "query" and isinstance(value, str) and where.startswith("templating"):
                    found.append((f"{where}.{key}", value))
                else:
                    walk(value, f"{where}.{key}" if where else key)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(doc, "")
    if not found:
        problems.append(f"{path}: no expressions found")
    return found


def rules_expressions(path, problems):
    found = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            m = re.match(r"\s*expr:\s*(.*?)\s*$", line)
            if m:
                if m.group(1) in ("", "|", ">", "|-", ">-"):
                    problems.append(f"{path}:{number}: write each expr on one line (this check reads them so)")
                found.append((f"line {number}", m.group(1)))
    if not found:
        problems.append(f"{path}: no expr: lines found")
    return found


def check_expression(source, where, expr, series, problems):
    known_labels = set(ADDED_BY_PROMETHEUS)
    for labels in series.values():
        known_labels |= set(labels)
    for name in NAME.findall(expr):
        if name not in series:
            problems.append(f"{source} {where}: {name} is not a series to_prometheus emits")
    for name, body in SELECTOR.findall(expr):
        labels = series.get(name, {})
        pos = 0
        while pos < len(body.strip()):
            m = MATCHER.match(body, pos)
            if not m:
                problems.append(f"{source} {where}: cannot read the selector {{{body}}}")
                break
            label, op, value = m.groups()
            pos = m.end()
            if label not in labels and label not in ADDED_BY_PROMETHEUS:
                problems.append(f"{source} {where}: {name} has no label {label}")
            elif label in LIBRARY_LABELS and op == "=" and "$" not in value and value not in labels[label]:
                problems.append(f"{source} {where}: {name} never has {label}=\"{value}\"")
    for group in GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label not in known_labels:
                problems.append(f"{source} {where}: no reservoir series has the label {label}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exposition", nargs="+", required=True)
    parser.add_argument("--rules", action="append", default=[])
    parser.add_argument("--dashboard", action="append", default=[])
    args = parser.parse_args()

    series, families = read_exposition(args.exposition)
    if not families:
        print("metric-names-check: the exposition has no families", file=sys.stderr)
        return 1
    problems = []
    checked = 0
    for path in args.rules:
        for where, expr in rules_expressions(path, problems):
            check_expression(path, where, expr, series, problems)
            checked += 1
    for path in args.dashboard:
        expressions = dashboard_expressions(path, problems)
        for where, expr in expressions:
            check_expression(path, where, expr, series, problems)
            checked += 1
        shown = set()
        for _, expr in expressions:
            shown |= set(NAME.findall(expr))
        for family in sorted(families):
            if not shown & {family, family + "_bucket", family + "_sum", family + "_count"}:
                problems.append(f"{path}: no panel shows {family}")
    for p in problems:
        print(f"metric-names-check: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"metric-names-check: {checked} expressions name only what to_prometheus emits "
          f"({len(families)} families, {len(series)} series names)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
