"""The web administration pages: a second thin shell over ``evstore.ops``, beside the CLI.

``create_app(home)`` is the ASGI application (Starlette, Jinja2 templates); ``serve_gui``
serves it under trio with Hypercorn, for ``evstore gui`` and ``evstore run --gui``.
"""

from evstore.web.app import create_app, serve_gui

__all__ = ["create_app", "serve_gui"]
