"""The web dashboard the gateway serves at ``/``: workflows live, their graphs and history,
performance, agents, breakers, running steps, and the guides with full-text search.

Pages are rendered on the server from what the actors answer (through the
gateway's services facade), with small plain ES modules and CSS served from
this package: no build step, no CDN, nothing fetched from the network.
"""

from actors.gateway.dashboard.docs import DocsLibrary
from actors.gateway.dashboard.pages import STATIC_DIR, dashboard_routes

__all__ = ["STATIC_DIR", "DocsLibrary", "dashboard_routes"]
