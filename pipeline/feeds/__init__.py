"""Feeds: the subscription list (``lists``) and fetched feed documents (``documents``)."""

from __future__ import annotations

from pipeline.feeds.documents import html_to_text, parse_feed
from pipeline.feeds.lists import load_feed_list, merge_feed_lists, read_opml, write_feed_list

__all__ = ["html_to_text", "load_feed_list", "merge_feed_lists", "parse_feed", "read_opml", "write_feed_list"]
