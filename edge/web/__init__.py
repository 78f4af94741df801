"""The bedside screen: a page served by the box itself (``nemg run --web``).

- :mod:`edge.web.hub`: what the live session hands the page (samples, int8 features, the
  decision and the panels), bounded and thread-safe;
- :mod:`edge.web.server`: the HTTP server (standard library only), the stream, clinicians'
  corrections into the event log, the review of past sessions;
- ``static/``: the page itself (plain JavaScript and canvas, no CDN: it works with no
  network at all).

Nothing here can change the model or the store: the page reads, and writes only
corrections.
"""
