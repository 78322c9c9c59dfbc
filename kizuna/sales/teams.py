"""Teams: users belong to teams, and a rep edits the deals and tasks of everyone in their teams (access.py)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.sales.models import Team, team_members


def create_team(session: Session, *, actor: Actor, name: str, member_ids: list[int]) -> Team:
    require(actor, "teams:manage")
    name = name.strip()
    if not name:
        raise ValidationError("a team needs a name", field="name")
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise Conflict(f"a team named '{name}' already exists", field="name")
    team = Team(name=name)
    session.add(team)
    session.flush()
    set_members(session, actor=actor, team_id=team.id, member_ids=member_ids, audit_it=False)
    audit.record(
        session, actor=actor, action="team.create", entity_type="team", entity_id=team.id,
        details={"members": sorted(set(member_ids))}, summary=name,
    )  # fmt: skip
    return team


def set_members(
    session: Session, *, actor: Actor, team_id: int, member_ids: list[int], audit_it: bool = True
) -> list[int]:
    """Make the team's members exactly ``member_ids``; returns them sorted."""
    require(actor, "teams:manage")
    if session.get(Team, team_id) is None:
        raise NotFound(f"team {team_id} not found")
    wanted = sorted(set(member_ids))
    known = set(session.scalars(select(User.id).where(User.id.in_(wanted))))
    missing = [i for i in wanted if i not in known]
    if missing:
        raise ValidationError(f"users {missing} do not exist", field="member_ids")
    before = members(session, team_id)
    session.execute(delete(team_members).where(team_members.c.team_id == team_id))
    if wanted:
        session.execute(team_members.insert(), [{"team_id": team_id, "user_id": i} for i in wanted])
    if audit_it and before != wanted:
        audit.record(
            session, actor=actor, action="team.update", entity_type="team", entity_id=team_id,
            details={"members": [before, wanted]},
        )  # fmt: skip
    return wanted


def members(session: Session, team_id: int) -> list[int]:
    return sorted(session.scalars(select(team_members.c.user_id).where(team_members.c.team_id == team_id)))


def list_teams(session: Session) -> list[tuple[Team, list[int]]]:
    return [(team, members(session, team.id)) for team in session.scalars(select(Team).order_by(Team.name))]
