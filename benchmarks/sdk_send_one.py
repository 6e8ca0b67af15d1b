"""One event with the official SDK, as a user's one-shot script would send it.

INTERCOM_BASE_URL=... INTERCOM_ACCESS_TOKEN=... python benchmarks/sdk_send_one.py USER_ID
"""

import os
import sys
import time

from intercom import Intercom

client = Intercom(
    token=os.environ["INTERCOM_ACCESS_TOKEN"], base_url=os.environ["INTERCOM_BASE_URL"]
)
client.events.create(
    request={
        "event_name": "bench-event",
        "created_at": int(time.time()),
        "user_id": sys.argv[1],
        "metadata": {"plan": "pro", "seats": "3"},
    }
)
