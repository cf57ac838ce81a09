"""Extraction quality: our article text against public labelled sets, each scored with its own metric.

Three development sets, each read from a local clone named by an environment variable
(none of their pages is in this repository):

* ``NEWSAGG_EVAL_TRAFILATURA``: trafilatura's evaluation set (``tests/evaldata.json``,
  pages in ``tests/cache`` or ``tests/eval``); per page, snippets that must be in the text
  ("with") and snippets that must not ("without"), counted over all pages into
  precision, recall and F1, as trafilatura's ``tests/eval_common.py`` counts them.
* ``NEWSAGG_EVAL_FUNDUS``: Fundus's parser test data (``tests/resources/parser/test_data``):
  pages of ~180 publishers with the body Fundus's own parser extracts; ROUGE-LSum F1 of
  our text against that body, averaged over pages (:mod:`.metrics`).
* ``NEWSAGG_EVAL_WCXB``: the ``dev`` split of WCXB; word-level F1 against each page's
  main content, averaged over pages, as WCXB's ``evaluate.py`` computes it, for all
  pages and for its articles (page type ``article``) apart. Only ``dev`` is ever read.

Every extractor in :data:`.extractors.EXTRACTORS` runs on the same pages in the same run.
"""
