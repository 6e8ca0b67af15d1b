"""What the ``ievents outbox`` commands share; the group itself is a line of
:data:`.commands.COMMANDS`.

Its commands are in :mod:`.outbox_inspect` (``status``, ``list``, ``export``),
:mod:`.outbox_admin` (``retry``, ``purge``) and :mod:`.outbox_workspaces`
(``default-workspace``, ``move``). sqlite3 is imported inside the commands, never at startup.
"""

from __future__ import annotations

# Larger numbers cannot be outbox ids or limits: SQLite refuses them with OverflowError.
SQLITE_MAX_INT = 2**63 - 1
