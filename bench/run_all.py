"""`make bench`: every benchmark once, one after the other, each printing its own figures.

The HTTP, SIP and scale-out ones need wrk, sip-tester and kamailio (`apt-get install wrk
sip-tester kamailio`); a missing tool skips that benchmark with a note. Each figure is a ratio
against a baseline measured in the same run (see each module's docstring).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES: list[tuple[str, tuple[str, ...]]] = [
    ("bench.bench_engine", ()),
    ("bench.bench_scoring", ()),
    ("bench.bench_restore", ()),
    ("bench.bench_swap_http", ("wrk",)),
    ("bench.bench_voice", ()),
    ("bench.bench_sip", ("sipp", "kamailio")),
    ("bench.bench_workers", ("wrk",)),
]


def main() -> int:
    failed = []
    for module, tools in BENCHES:
        missing = [t for t in tools if shutil.which(t) is None]
        print(f"\n== {module}", flush=True)
        if missing:
            print(f"   skipped: {', '.join(missing)} not installed", flush=True)
            continue
        if subprocess.run([sys.executable, "-m", module], cwd=ROOT, check=False).returncode != 0:
            failed.append(module)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
