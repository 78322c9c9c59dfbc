"""Every kind in the timeline's registry has what the 360 page needs: an icon, a partial and a label per language."""

from __future__ import annotations

import pytest
from jinja2 import TemplateNotFound

from kizuna.customers.timeline import KINDS, SOURCES
from kizuna.web.i18n import LANGUAGES, catalog
from kizuna.web.ui_base import TEMPLATES, TIMELINE_KINDS, env


@pytest.mark.parametrize("kind", KINDS)
def test_each_timeline_kind_has_an_icon_a_partial_and_a_label_in_every_language(kind):
    shown = TIMELINE_KINDS[kind]
    assert shown.icon.strip(), f"timeline kind '{kind}' has no icon in customers/timeline.py SOURCES"
    try:
        env.get_template(shown.partial)
    except TemplateNotFound:
        pytest.fail(f"timeline kind '{kind}' has no partial: add kizuna/web/templates/{shown.partial}")
    for lang in LANGUAGES:
        assert f"kind.{kind}" in catalog(lang), f"timeline kind '{kind}' has no label 'kind.{kind}' in {lang}.json"


def test_the_page_knows_exactly_the_registry_kinds():
    assert set(TIMELINE_KINDS) == {s.kind for s in SOURCES}
    partials = {p.stem for p in (TEMPLATES / "customers" / "timeline").glob("*.html")}
    assert partials == set(KINDS), "a partial without a timeline kind is dead code"
