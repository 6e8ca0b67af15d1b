"""Scrape a relay's ``/metrics`` from several threads at once, as hard as they can.

    python benchmarks/scraper.py PORT THREADS MAX_SECONDS

Each thread GETs ``http://127.0.0.1:PORT/metrics`` in a loop (a refused connection,
before the relay listens, is retried after 10 ms) until standard input closes or
MAX_SECONDS pass: a bounded storm on loopback. Prints ``SCRAPES n ERRORS n`` at the end.
A process of its own, so that its work does not share the benchmark's GIL with the
fake Intercom.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request


def main() -> int:
    port, threads, max_seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    stop = threading.Event()
    counts = [0] * threads
    errors = [0] * threads
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + max_seconds

    def scrape(index: int) -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=30) as answer:
                    answer.read()
                counts[index] += 1
            except OSError:
                errors[index] += 1
                stop.wait(0.01)

    workers = [threading.Thread(target=scrape, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the benchmark closes the pipe
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    for worker in workers:
        worker.join()
    print(f"SCRAPES {sum(counts)} ERRORS {sum(errors)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
