"""What the ``ievents outbox`` commands share; the group itself is a line of
:data:`.commands.COMMANDS`.

Its commands are in :mod:`.outbox_inspect` (``status``, ``list``, ``export``),
:mod:`.outbox_admin` (``retry``, ``purge``) and :mod:`.outbox_workspaces`
(``default-workspace``, ``move``). sqlite3 is imported inside the commands, never at startup.
"""

from __future__ import annotations

# The largest outbox id or limit: larger numbers are refused as options (a store would
# refuse them as parameters).
from ...outbox.store import MAX_ID as MAX_ID
