"""``python -m intercom_events_cli`` runs the ievents command line."""

import sys

from .cli import main

sys.exit(main())
