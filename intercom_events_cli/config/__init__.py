"""Settings: the token, region, base URL and timeouts, where each value came from,
profiles, and the secrets kept out of every output."""
