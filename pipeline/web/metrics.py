"""What the operator's monitoring asks: /metrics, the store's counts and the last run in the Prometheus
text format (pipeline.metrics); /healthz, whether the store and the search backend answer."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from pipeline import metrics
from pipeline.errors import NewsaggError
from pipeline.models import SearchQuery
from pipeline.web.app import Services, services

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def prometheus(use: Annotated[Services, Depends(services)]) -> Response:
    return Response(metrics.render(use.store, use.settings), media_type=metrics.CONTENT_TYPE)


@router.get("/healthz")
def health(use: Annotated[Services, Depends(services)]) -> JSONResponse:
    """200 while the store answers (``degraded`` when only the search backend does not: the other
    pages still work); 503 when the store does not."""
    checks = {}
    for name, check in (("store", use.store.ping), ("search", lambda: use.search(SearchQuery(text="healthz", limit=1)))):
        try:
            check()
            checks[name] = "ok"
        except NewsaggError as exc:
            log.warning("healthz: %s unavailable: %s", name, exc)  # the reason names hosts: the server's log only
            checks[name] = "unavailable"
    status = "ok" if set(checks.values()) == {"ok"} else "degraded" if checks["store"] == "ok" else "unavailable"
    return JSONResponse({"status": status, **checks}, status_code=503 if status == "unavailable" else 200,
                        headers={"Cache-Control": "no-store"})
