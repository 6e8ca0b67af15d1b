"""Input: NDJSON, CSV and gzip streams to records with line numbers; the rejects file."""
