"""/metrics: the store's counts and the last run in the Prometheus text format (pipeline.metrics)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from pipeline import metrics
from pipeline.web.app import Services, services

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def prometheus(use: Annotated[Services, Depends(services)]) -> Response:
    return Response(metrics.render(use.store, use.settings), media_type=metrics.CONTENT_TYPE)
