"""Schemathesis against a real `cms serve`, at length: `python -m bench.fuzz [--examples 100] [--scope SCOPE ...]`.

Runs tests/e2e/test_fuzz_serve.py (every operation of /api/v1/openapi.json, with no key and with a key
of each scope; every answer checked for server errors, the documented status and schema, and the
error envelope on 4xx) with `--examples` cases per operation and scope instead of CI's 3, then prints
per scope: cases sent, answers by status class, failures, and the wall time. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/e2e/test_fuzz_serve.py::test_real_server_answers_as_documented_with_{scope}_key"
SCOPES = ("none", "read", "write", "delete", "admin")


def fuzz_scope(scope: str, examples: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="cms-fuzz-") as tmp:
        report = Path(tmp) / "answers.json"
        env = {**os.environ, "CMS_FUZZ_SERVE_EXAMPLES": str(examples), "CMS_FUZZ_SERVE_REPORT": str(report)}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", TEST.format(scope=scope), "-q", "-p", "no:cacheprovider", "-x"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        data = json.loads(report.read_text()) if report.exists() else {"answers": {}, "keys_replaced": 0}
    answers = Counter({int(k): v for k, v in data["answers"].get(scope, {}).items()})
    failures = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR", "E "))]
    return {
        "scope": scope,
        "passed": done.returncode == 0,
        "cases": sum(answers.values()),
        "2xx": sum(n for s, n in answers.items() if 200 <= s < 300),
        "4xx": sum(n for s, n in answers.items() if 400 <= s < 500),
        "5xx": sum(n for s, n in answers.items() if s >= 500),
        "keys_replaced": data["keys_replaced"],
        "seconds": seconds,
        "failures": failures[:20],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="cases per operation and scope")
    parser.add_argument("--scope", action="append", choices=SCOPES, help="fuzz only these scopes (repeatable)")
    args = parser.parse_args(argv)
    results = []
    for scope in args.scope or SCOPES:
        result = fuzz_scope(scope, args.examples)
        results.append(result)
        print(
            f"{scope:<6} {'PASS' if result['passed'] else 'FAIL'}  {result['cases']:>6} cases  "
            f"2xx {result['2xx']:>5}  4xx {result['4xx']:>5}  5xx {result['5xx']:>3}  "
            f"keys replaced {result['keys_replaced']}  {result['seconds']:.0f} s",
            flush=True,
        )
        for line in result["failures"]:  # type: ignore[attr-defined]
            print(f"    {line}")
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
