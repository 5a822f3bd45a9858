"""The limit: a minimal loop that sleeps until each due second and spawns the jobs.

    python limit.py N OUT

No store, no threads, no bookkeeping beyond reaping children: the floor any
scheduler that forks ``sh`` once per fire on this machine can reach.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time


def main() -> None:
    n, out = int(sys.argv[1]), sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    children: list[subprocess.Popen] = []
    print("limit loop started", file=sys.stderr, flush=True)
    due = math.ceil(time.time())
    while True:
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        for i in range(n):
            cmd = f'echo "j{i} {due:.0f} $(date +%s.%N)" >> {out}'
            children.append(subprocess.Popen(["sh", "-c", cmd]))
        children = [c for c in children if c.poll() is None]
        due = max(due + 1, math.ceil(time.time()))  # a second that is already over is missed


if __name__ == "__main__":
    main()
