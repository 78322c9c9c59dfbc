"""Pipelines and their stages: the default one (made on first use), new ones, and reading them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.sales.models import Deal, Pipeline, Stage
from kizuna.sales.schemas import PipelineCreate, StageIn, StageUpdate

# The stages Japanese B2B sales teams name (アポイント → ヒアリング → 提案 → 交渉 → 受注 / 失注), with English
# names; they are data, so a team renames or adds stages without code.
DEFAULT_PIPELINE = ("営業パイプライン", "Sales pipeline")
DEFAULT_STAGES = (
    StageIn(name="アポイント", name_en="Appointment", probability=10, kind="open"),
    StageIn(name="ヒアリング", name_en="Discovery", probability=25, kind="open"),
    StageIn(name="提案", name_en="Proposal", probability=50, kind="open"),
    StageIn(name="交渉", name_en="Negotiation", probability=75, kind="open"),
    StageIn(name="受注", name_en="Won", probability=100, kind="won"),
    StageIn(name="失注", name_en="Lost", probability=0, kind="lost"),
)


def _add_stages(session: Session, pipeline: Pipeline, stages: list[StageIn] | tuple[StageIn, ...]) -> None:
    for position, stage in enumerate(stages):
        session.add(Stage(pipeline_id=pipeline.id, position=position, **stage.model_dump()))


def default_pipeline(session: Session) -> Pipeline:
    """The default pipeline, created with its stages the first time anyone asks (no audit: the system's setup)."""
    pipeline = session.scalar(select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.position, Pipeline.id))
    if pipeline is not None:
        return pipeline
    pipeline = Pipeline(name=DEFAULT_PIPELINE[0], name_en=DEFAULT_PIPELINE[1], is_default=True, position=0)
    session.add(pipeline)
    session.flush()
    _add_stages(session, pipeline, DEFAULT_STAGES)
    session.flush()
    return pipeline


def create_pipeline(session: Session, *, actor: Actor, data: PipelineCreate) -> Pipeline:
    require(actor, "pipelines:manage")
    if session.scalar(select(Pipeline.id).where(Pipeline.name == data.name)) is not None:
        raise Conflict(f"a pipeline named '{data.name}' already exists", field="name")
    default_pipeline(session)  # the first pipeline someone makes is not the default one by accident
    position = session.scalar(select(func.coalesce(func.max(Pipeline.position), -1))) + 1
    pipeline = Pipeline(name=data.name, name_en=data.name_en, position=position, is_default=False)
    session.add(pipeline)
    session.flush()
    _add_stages(session, pipeline, data.stages)
    audit.record(
        session,
        actor=actor,
        action="pipeline.create",
        entity_type="pipeline",
        entity_id=pipeline.id,
        details={"stages": [s.name for s in data.stages]},
        summary=pipeline.name,
    )
    session.flush()
    return pipeline


def list_pipelines(session: Session) -> list[Pipeline]:
    default_pipeline(session)
    return list(session.scalars(select(Pipeline).order_by(Pipeline.position, Pipeline.id)))


def get_pipeline(session: Session, pipeline_id: int) -> Pipeline:
    pipeline = session.get(Pipeline, pipeline_id)
    if pipeline is None:
        raise NotFound(f"pipeline {pipeline_id} not found")
    return pipeline


def stages_of(session: Session, pipeline_id: int) -> list[Stage]:
    return list(session.scalars(select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position)))


def get_stage(session: Session, stage_id: int) -> Stage:
    stage = session.get(Stage, stage_id)
    if stage is None:
        raise NotFound(f"stage {stage_id} not found", field="stage_id")
    return stage


def pipeline_read(session: Session, pipeline: Pipeline) -> dict:
    """The pipeline with its stages, as ``PipelineRead`` validates it."""
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "name_en": pipeline.name_en,
        "is_default": pipeline.is_default,
        "version": pipeline.version,
        "stages": stages_of(session, pipeline.id),
    }


# --- Changing a pipeline: stages added, renamed, reordered, and which pipeline is the default -----------------


def _stage_of(session: Session, pipeline_id: int, stage_id: int) -> Stage:
    stage = get_stage(session, stage_id)
    if stage.pipeline_id != pipeline_id:
        raise NotFound(f"stage {stage_id} is not a stage of pipeline {pipeline_id}", field="stage_id")
    return stage


def add_stage(session: Session, *, actor: Actor, pipeline_id: int, data: StageIn) -> Stage:
    """A new last column of the pipeline."""
    require(actor, "pipelines:manage")
    pipeline = get_pipeline(session, pipeline_id)
    stages = stages_of(session, pipeline.id)
    if len(stages) >= 50:
        raise ValidationError("a pipeline has at most 50 stages", field="name")
    stage = Stage(pipeline_id=pipeline.id, position=len(stages), **data.model_dump())
    session.add(stage)
    session.flush()
    audit.record(
        session, actor=actor, action="pipeline.stage_add", entity_type="pipeline", entity_id=pipeline.id,
        details={"stage_id": stage.id, **data.model_dump()}, summary=f"{pipeline.name}: {stage.name}",
    )  # fmt: skip
    return stage


def update_stage(session: Session, *, actor: Actor, pipeline_id: int, stage_id: int, data: StageUpdate) -> Stage:
    """Rename a stage, change its probability or its kind (a kind only while no deal is in the stage: its deals'
    closing times would otherwise say something the history does not)."""
    require(actor, "pipelines:manage")
    stage = _stage_of(session, pipeline_id, stage_id)
    values = data.model_dump(exclude_unset=True)
    if "name" in values and values["name"] is None:
        raise ValidationError("a stage's name cannot be emptied", field="name")
    for name in ("probability", "kind"):
        if name in values and values[name] is None:
            values.pop(name)
    if "kind" in values and values["kind"] != stage.kind:
        count = session.scalar(select(func.count()).select_from(Deal).where(Deal.stage_id == stage.id))
        if count:
            raise ValidationError(
                f"stage '{stage.name}' holds {count} deals: move them to another stage before changing its kind",
                field="kind",
            )
    changes = {k: [getattr(stage, k), v] for k, v in values.items() if getattr(stage, k) != v}
    for name, (_, new) in changes.items():
        setattr(stage, name, new)
    if changes:
        session.flush()
        audit.record(
            session, actor=actor, action="pipeline.stage_update", entity_type="pipeline", entity_id=pipeline_id,
            details={"stage_id": stage.id, **changes}, summary=stage.name,
        )  # fmt: skip
    return stage


def move_stage(session: Session, *, actor: Actor, pipeline_id: int, stage_id: int, position: int) -> list[Stage]:
    """Put the stage at ``position`` (0 = first column), the others keeping their order; returns the stages."""
    require(actor, "pipelines:manage")
    stage = _stage_of(session, pipeline_id, stage_id)
    stages = stages_of(session, pipeline_id)
    if position >= len(stages):
        raise ValidationError(f"position {position} is past the last stage ({len(stages) - 1})", field="position")
    before = stage.position
    if before == position:
        return stages
    order = [s for s in stages if s.id != stage.id]
    order.insert(position, stage)
    # Positions are unique per pipeline: park every stage on a negative one first, so no update collides.
    for i, s in enumerate(order):
        s.position = -1 - i
    session.flush()
    for i, s in enumerate(order):
        s.position = i
    session.flush()
    audit.record(
        session, actor=actor, action="pipeline.stage_move", entity_type="pipeline", entity_id=pipeline_id,
        details={"stage_id": stage.id, "position": [before, position]}, summary=stage.name,
    )  # fmt: skip
    return order


def set_default(session: Session, *, actor: Actor, pipeline_id: int) -> Pipeline:
    """Make ``pipeline_id`` the default one (new deals without a pipeline go there; the board opens on it)."""
    require(actor, "pipelines:manage")
    pipeline = get_pipeline(session, pipeline_id)
    if pipeline.is_default:
        return pipeline
    previous = None
    for other in session.scalars(select(Pipeline).where(Pipeline.is_default.is_(True))):
        other.is_default = False
        previous = other.id
    pipeline.is_default = True
    session.flush()
    audit.record(
        session, actor=actor, action="pipeline.default", entity_type="pipeline", entity_id=pipeline.id,
        details={"default": [previous, pipeline.id]}, summary=pipeline.name,
    )  # fmt: skip
    return pipeline
