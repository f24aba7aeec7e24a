"""An order's commission follows its order (README, the engine's API: pending, approved and reversed totals):
created -> pending, paid -> approved, cancelled or refunded -> reversed. Written by hand, so a changed mapping
fails here (a refunded order still paying its affiliate survived `tools/dev.py mutate` before)."""

from __future__ import annotations

import pytest
from engine.domain.model import COMMISSION_FOR, CommissionStatus, OrderStatus, next_status

LIFECYCLE = {("created", "pay"): ("paid", "approved"), ("created", "cancel"): ("cancelled", "reversed"),
             ("paid", "refund"): ("refunded", "reversed")}


@pytest.mark.parametrize(("start", "action"), sorted(LIFECYCLE))
def test_each_action_moves_the_order_and_its_commission(start: str, action: str) -> None:
    status, commission = LIFECYCLE[start, action]
    after = next_status(OrderStatus(start), action)
    assert (after.value, COMMISSION_FOR[after].value) == (status, commission)


def test_a_new_order_earns_a_pending_commission() -> None:
    assert COMMISSION_FOR[OrderStatus.CREATED] is CommissionStatus.PENDING
