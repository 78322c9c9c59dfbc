"""Definitions are refused at save and publish with every problem named at its step: unknown step types, dangling
and unreachable steps, loops without a wait, conditions that are not segment rules, unknown templates and
segments; YAML reads as the same structure."""

from __future__ import annotations

import copy

import pytest

from kizuna.journeys import service
from kizuna.journeys.definition import JourneyDefinitionError, load_yaml, parse_definition
from kizuna.journeys.steps import parse_duration
from kizuna.segments import service as segments
from kizuna.segments.schemas import SegmentCreate
from tests import factories
from tests.journeys.conftest import MARKETER, definition, template

GOOD = definition(
    [
        {"id": "w1", "type": "wait", "duration": "P1D", "next": "b1"},
        {"id": "b1", "type": "branch", "condition": {"tag": "VIP"}, "yes": "m1", "no": "x1"},
        {"id": "m1", "type": "send", "template": "welcome-mail", "next": "x1"},
        {"id": "x1", "type": "exit"},
    ]
)


def problems_of(raw) -> list[tuple[str | None, str, str]]:  # noqa: ANN001
    with pytest.raises(JourneyDefinitionError) as caught:
        parse_definition(raw)
    return [(p.step, p.path, p.message) for p in caught.value.problems]


def edited(**changes) -> dict:  # noqa: ANN003
    raw = copy.deepcopy(GOOD)
    steps = {s["id"]: s for s in raw["steps"]}
    for step_id, fields in changes.items():
        steps[step_id].update(fields)
    return raw


def test_a_good_definition_parses_with_its_defaults():
    parsed = parse_definition(GOOD)
    assert list(parsed.steps) == ["w1", "b1", "m1", "x1"]
    assert parsed.as_json()["steps"][2] == {
        "id": "m1", "type": "send", "channel": "email", "template": "welcome-mail", "kind": "marketing", "next": "x1"
    }  # fmt: skip
    assert parsed.reentry == "never" and parsed.trigger.type == "manual"


def test_an_unreachable_step_is_named():
    raw = copy.deepcopy(GOOD)
    raw["steps"].append({"id": "orphan", "type": "tag", "add": ["x"], "next": "x1"})
    assert problems_of(raw) == [("orphan", "steps.orphan", "step 'orphan' cannot be reached from the start")]


def test_a_loop_without_a_wait_is_named_and_one_with_a_wait_is_fine():
    looping = edited(m1={"next": "b1"}, w1={"duration": "PT0M"})
    [(step, path, message)] = problems_of(looping)
    assert step == "b1" and path == "steps.b1"
    assert message == "the loop b1 → m1 → b1 passes no wait: add a wait with a duration to it"
    assert parse_definition(edited(m1={"next": "w1"})).start == "w1"  # the loop passes w1, a real wait


def test_a_dangling_next_an_unknown_type_and_bad_settings_are_each_named():
    assert problems_of(edited(b1={"yes": "nowhere"})) == [
        ("b1", "steps.b1.yes", "step 'b1' leads to 'nowhere', which is not a step")
    ]
    assert problems_of(edited(m1={"type": "fax"}))[0][:2] == ("m1", "steps.m1.type")
    assert problems_of(edited(w1={"duration": "tomorrow"})) == [
        ("w1", "steps.w1.duration", "'tomorrow' is not a duration such as P1D, PT2H or P1DT30M")
    ]
    assert problems_of(edited(m1={"channel": "fax"}))[0][:2] == ("m1", "steps.m1.channel")
    raw = copy.deepcopy(GOOD)
    raw["start"] = "nope"
    assert problems_of(raw) == [(None, "start", "the start names no step ('nope')")]


def test_a_branch_condition_must_be_a_segment_rule_and_the_error_points_inside_it():
    bad = edited(b1={"condition": {"all": [{"tag": "VIP"}, {"attribute": "shoe_size", "op": "eq", "value": 1}]}})
    [(step, path, message)] = problems_of(bad)
    assert (step, path) == ("b1", "steps.b1.condition.all[1].attribute")
    assert message.startswith("not a valid segment rule: unknown attribute 'shoe_size'")


def test_durations():
    assert parse_duration("P1D").days == 1
    assert parse_duration("PT90M").total_seconds() == 5400
    assert parse_duration({"days": 1, "hours": 2}).total_seconds() == 93600
    for bad in ("P", "PT", "1D", {"weeks": 1}, {"days": -1}, "P4000D"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_yaml_reads_as_the_same_structure():
    text = """
name: Welcome
trigger: {type: manual}
start: w1
steps:
  - {id: w1, type: wait, duration: P1D, next: b1}
  - id: b1
    type: branch
    condition: {tag: VIP}
    yes: m1
    no: x1
  - {id: m1, type: send, template: welcome-mail, next: x1}
  - {id: x1, type: exit}
"""
    assert parse_definition(load_yaml(text)).as_json() == parse_definition(GOOD).as_json()
    with pytest.raises(JourneyDefinitionError, match="not valid YAML at line 2"):
        load_yaml("name: [\nsteps: 1")


def test_saving_refuses_unknown_templates_and_segments_and_a_condition_that_does_not_compile(session):
    with pytest.raises(JourneyDefinitionError) as caught:
        service.create_journey(session, actor=MARKETER, definition=GOOD)
    assert [(p.step, p.path, p.code) for p in caught.value.problems] == [
        ("m1", "steps.m1.template", "unknown_template")
    ]
    template(session, "welcome-mail", channel="line")
    with pytest.raises(JourneyDefinitionError, match="template 'welcome-mail' is for line, not email"):
        service.create_journey(session, actor=MARKETER, definition=GOOD)
    raw = edited(m1={"channel": "line"}, b1={"condition": {"segment": 999}})
    raw["trigger"] = {"type": "segment_entered", "segment": 998}
    with pytest.raises(JourneyDefinitionError) as caught:
        service.create_journey(session, actor=MARKETER, definition=raw)
    assert [(p.step, p.path, p.code) for p in caught.value.problems] == [
        (None, "trigger.segment", "unknown_segment"),
        ("b1", "steps.b1.condition.segment", "condition"),
    ]
    # A rule that parses but does not compile: an operator that does not fit the field.
    raw = edited(m1={"channel": "line"}, b1={"condition": {"attribute": "prefecture", "op": "gt", "value": "x"}})
    with pytest.raises(JourneyDefinitionError, match="steps.b1.condition.attribute.op"):
        service.create_journey(session, actor=MARKETER, definition=raw)
    segment = segments.create_segment(session, actor=factories.SYSTEM, data=SegmentCreate(name="s", rule={"tag": "x"}))
    raw = edited(m1={"channel": "line"}, b1={"condition": {"segment": segment.id}})
    assert service.create_journey(session, actor=MARKETER, definition=raw).status == "draft"


def test_validate_lists_every_problem_without_saving(session):
    raw = copy.deepcopy(GOOD)
    raw["steps"].append({"id": "lost", "type": "exit"})
    problems = service.validate(session, raw, actor=MARKETER)
    assert [(p["step"], p["code"]) for p in problems] == [("lost", "unreachable")]
    template(session)
    assert service.validate(session, GOOD, actor=MARKETER) == []
