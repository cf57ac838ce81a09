"""`newsagg serve`: read-only web pages, a JSON API and feeds over the store and search backend."""

from __future__ import annotations

from pipeline.web.app import create_app

__all__ = ["create_app"]
