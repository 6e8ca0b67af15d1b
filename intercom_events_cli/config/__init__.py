"""Settings: the token, region, base URL and timeouts, and where each value came from.

:mod:`.settings` resolves :class:`~.settings.Settings` (flag > variable > profile > ``.env``
> default); :mod:`.variables` merges the variables and remembers each one's origin;
:mod:`.profiles` reads the profiles file; :mod:`.redaction` keeps the secrets out of every
output; :mod:`.warning_sink` holds configuration warnings until the CLI takes them;
:mod:`.outbox_path` says where the outbox is.
"""
