"""The floor of ``ievents batch --dry-run``: the least a Python script does to check lines.

    python benchmarks/floor_batch_dry_run.py FILE.ndjson

It parses each line with ``json.loads`` and looks at its fields: an event name, one of
the contact fields, ``created_at``, and each metadata key and value. It counts the records
that have a name and a contact; it checks no types, lengths, times or metadata rules.
Prints ``{"lines": N, "valid": M}``.
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    loads = json.loads
    lines = valid = 0
    with open(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            lines += 1
            record = loads(line)
            name = record.get("event_name")
            contact = record.get("user_id") or record.get("email") or record.get("id")
            created = record.get("created_at")
            metadata = record.get("metadata") or {}
            for key, value in metadata.items():
                if not key or value is None:
                    break
            if name and contact and created is not None:
                valid += 1
    print(json.dumps({"lines": lines, "valid": valid}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
