"""Business cards over HTTP: scan an image into a draft contact, save the corrected contact as a customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from kizuna.auth.permissions import require
from kizuna.customers import card_scan
from kizuna.customers.schemas import CardContactIn, CardDraftRead, CardSavedRead
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/cards", tags=["cards"])


@router.post("/scan", response_model=CardDraftRead)
def scan(
    actor: APIActor, file: Annotated[UploadFile, File(description="A JPEG or PNG photo or scan")]
) -> CardDraftRead:
    """Read a business card with Tesseract (Japanese and English) into a draft contact; nothing is stored.
    422 ``card_unreadable`` naming the problem for an empty file, a non-image, or one too small to read."""
    require(actor, "customers:write")
    data = file.file.read(card_scan.MAX_BYTES + 1)
    draft = card_scan.read_card(data)
    return CardDraftRead.model_validate(draft, from_attributes=True)


@router.post("", status_code=201, response_model=CardSavedRead)
def save(data: CardContactIn, session: DB, actor: APIActor) -> CardSavedRead:
    """Save a confirmed card as a customer by the same identity rules as a CSV import: the same e-mail is the
    same person (updated, never duplicated); a phone another customer has is put up for duplicate review."""
    customer, outcome = card_scan.save_card(session, actor=actor, values=data.model_dump())
    session.commit()
    return CardSavedRead(customer_id=customer.id, outcome=outcome)  # type: ignore[arg-type]
