"""``kizuna journeys apply FILE.yaml`` creates a journey or publishes the file as its next version; ``list`` and
``stats NAME`` show them; a file with an unreachable step is refused with the step named."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli import kizuna as run_kizuna

WELCOME = """\
name: ようこそ
description: 新規のお客様へ
trigger: {type: manual}
start: wait
steps:
  - {id: wait, type: wait, duration: P1D, next: vip}
  - id: vip
    type: branch
    condition: {tag: VIP}
    yes: thanks
    no: done
  - {id: thanks, type: tag, add: [welcomed], next: done}
  - {id: done, type: exit}
"""


def kizuna(home, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return run_kizuna(*args, KIZUNA_HOME=str(home), KIZUNA_DATABASE_URL="")


@pytest.fixture
def home(tmp_path):  # noqa: ANN001, ANN201
    return tmp_path / "home"


def test_apply_creates_then_publishes_new_versions_and_list_and_stats_show_it(home, tmp_path):
    path = tmp_path / "welcome.yaml"
    path.write_text(WELCOME, encoding="utf-8")
    first = kizuna(home, "journeys", "apply", str(path))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "journey 1 'ようこそ' created: version 1 is live" in first.stdout
    again = kizuna(home, "journeys", "apply", str(path))
    assert "unchanged: version 1 is live" in again.stdout
    path.write_text(WELCOME.replace("P1D", "P2D"), encoding="utf-8")
    third = kizuna(home, "journeys", "apply", str(path))
    assert "journey 1 'ようこそ' published: version 2 is live" in third.stdout

    listed = json.loads(kizuna(home, "journeys", "list", "--format", "json").stdout)
    assert listed == [
        {"id": 1, "name": "ようこそ", "status": "live", "version": 2, "trigger": "manual", "enrolled": 0, "open": 0,
         "converted": 0}
    ]  # fmt: skip
    stats = kizuna(home, "journeys", "stats", "ようこそ")
    assert stats.returncode == 0 and "ようこそ (version 2): 0 enrolled" in stats.stdout
    numbers = json.loads(kizuna(home, "journeys", "stats", "ようこそ", "--format", "json").stdout)
    assert [s["step"] for s in numbers["steps"]] == ["wait", "vip", "thanks", "done"]
    missing = kizuna(home, "journeys", "stats", "nope")
    assert missing.returncode == 2 and "there is no journey named 'nope'" in missing.stdout


def test_a_file_with_an_unreachable_step_is_refused_with_the_step_named(home, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(WELCOME + "  - {id: forgotten, type: exit}\n", encoding="utf-8")
    answer = kizuna(home, "journeys", "apply", str(path))
    assert answer.returncode == 2
    assert "steps.forgotten: step 'forgotten' cannot be reached from the start" in answer.stdout
    checked = kizuna(home, "journeys", "validate", str(path))
    assert checked.returncode == 2 and "steps.forgotten" in checked.stdout
    assert "[]" in kizuna(home, "journeys", "list", "--format", "json").stdout
