"""HTTP: one httpx client, its transport bounds and connections, the retry policy,
rate-limit pacing, and the reads of Intercom's API (GET /me, a contact's events)."""
