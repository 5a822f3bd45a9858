"""Bare APScheduler 3.11: a SQLAlchemy job store on SQLite, a thread pool, the same subprocess.

    python aps_peer.py run N OUT DB      # N jobs every second, until SIGTERM
    python aps_peer.py add N DB          # only time add_job of N jobs (the store's sync)

Defaults left as APScheduler ships them (misfire_grace_time 1 s, coalesce), except a
pool of 20 threads, as the original supertask uses.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def fire(job: str, out: str) -> None:
    subprocess.call(f'echo "{job} - $(date +%s.%N)" >> {out}', shell=True)


def main() -> None:
    t0 = time.perf_counter()
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    mode, n = sys.argv[1], int(sys.argv[2])
    out = sys.argv[3] if mode == "run" else "/dev/null"
    db = sys.argv[-1]
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{db}")},
        executors={"default": ThreadPoolExecutor(20)},
        timezone="UTC",
    )
    if mode == "add":
        scheduler.start(paused=True)
        t1 = time.perf_counter()
        for i in range(n):
            scheduler.add_job("aps_peer:fire", "cron", second="*", id=f"j{i}", args=[f"j{i}", out],
                              replace_existing=True)
        t2 = time.perf_counter()
        print(f"added {n} jobs in {t2 - t1:.3f} s (import+start {t1 - t0:.3f} s)", file=sys.stderr, flush=True)
        scheduler.shutdown(wait=False)
        return
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False) or sys.exit(0))
    scheduler.start(paused=True)
    for i in range(n):
        scheduler.add_job("aps_peer:fire", "cron", second="*", id=f"j{i}", args=[f"j{i}", out],
                          replace_existing=True)
    scheduler.resume()
    print("apscheduler started", file=sys.stderr, flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
