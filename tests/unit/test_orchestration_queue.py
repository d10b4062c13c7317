"""Every step of kubesalt's orchestrations waits for a state run already going on its
minions (a repair's re-apply, the scheduled highstate) instead of failing on the conflict,
with the same numeric queue as the repairs and the schedule (kubesalt_core.heal.STATE_QUEUE)."""

import re

import kubesalt_core.heal
from tests.conftest import STATES_DIR

ORCH = STATES_DIR / "kubesalt" / "orch"


def test_the_orchestrations_queue_is_the_repairs_and_the_schedules():
    params = (ORCH / "params.jinja").read_text()
    (number,) = re.findall(r"set state_queue = (\d+)", params)
    assert int(number) == kubesalt_core.heal.STATE_QUEUE
    assert kubesalt_core.heal.STATE_QUEUE is not True and kubesalt_core.heal.STATE_QUEUE > 1


def test_every_salt_state_step_of_every_orchestration_waits_its_turn():
    steps = 0
    for sls in sorted(ORCH.glob("*.sls")):
        text = sls.read_text()
        blocks = re.split(r"\n(?=\S)", text)  # one block per state id
        for block in blocks:
            if "\n  salt.state:" not in block:
                continue
            steps += 1
            assert "\n    - queue: {{ state_queue }}\n" in block, (sls.name, block)
        if "salt.state:" in text:
            assert re.search(r"import [^%]*\bstate_queue\b[^%]* with context", text), sls.name
    assert steps >= 10  # the four orchestrations' steps were found
