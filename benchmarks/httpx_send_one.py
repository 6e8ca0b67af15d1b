"""One event with nothing but httpx, as the barest one-shot script would send it.

INTERCOM_BASE_URL=... INTERCOM_ACCESS_TOKEN=... python benchmarks/httpx_send_one.py USER_ID

The floor of a cold ``ievents send`` (issue 24: at most 1.2 times this).
"""

import os
import sys
import time

import httpx

reply = httpx.post(
    os.environ["INTERCOM_BASE_URL"] + "/events",
    headers={"Authorization": "Bearer " + os.environ["INTERCOM_ACCESS_TOKEN"]},
    json={
        "event_name": "bench-event",
        "created_at": int(time.time()),
        "user_id": sys.argv[1],
        "metadata": {"plan": "pro", "seats": "3"},
    },
)
sys.exit(0 if reply.status_code == 202 else 1)
