"""Contract tests: the real CLI against Intercom's own OpenAPI description, served by Prism."""
