"""Every body that crosses HTTP: the services' /health, the simulator's scenario API, the review
API (requests, responses and error bodies).

The bus has its contract in ``engine/schemas.py``; this module is its HTTP sibling, so that the
services, the TUI and the CLI share one typed definition of each request and answer instead of
building and parsing dicts by hand.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Service health (every service's GET /health)
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Simulator scenario API
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Review API: tickets
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Review API: alarms
# --------------------------------------------------------------------------------------------
