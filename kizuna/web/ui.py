"""Server-rendered UI (placeholder until the UI lands)."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
