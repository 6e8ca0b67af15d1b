"""``python -m intercom_events_cli`` runs the ievents command line."""

from .cli import main

main()
