"""The ``ievents outbox`` commands, and what they share; the group itself is a line of
:data:`..commands.COMMANDS`.

Its commands are in :mod:`.inspection` (``status``, ``list``, ``export``),
:mod:`.admin` (``retry``, ``purge``) and :mod:`.workspaces`
(``default-workspace``, ``move``). sqlite3 is imported inside the commands, never at startup.
"""

from __future__ import annotations

# The largest outbox id or limit: larger numbers are refused as options (a store would
# refuse them as parameters).
from ...outbox.store import MAX_ID as MAX_ID
