"""The small HTTP endpoint `digestbot run` serves (see `bot.web.app` for the routes)."""

from bot.web.app import WebServer, make_app

__all__ = ["WebServer", "make_app"]
