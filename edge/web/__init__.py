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

DEFAULT_LISTEN = "127.0.0.1:8080"
"""Where ``--web`` listens when given no address: this box's own screen only."""


def start_web(listen: str, *, token: str | None, log_path, inner, trial: bool = False,
              announce=None):
    """Start the page's server for one live session: (the server, the session's view).
    ``inner``: the terminal or plain view the session also keeps; ``announce``: a stream
    told where the page is."""
    from edge.web.hub import WebHub, WebView
    from edge.web.server import WebScreen

    hub = WebHub()
    screen = WebScreen(hub, listen=listen, log_path=log_path, token=token)
    screen.start()
    if announce is not None:
        print(f"bedside page on {screen.url}", file=announce, flush=True)
    return screen, WebView(hub, inner, trial=trial)
