"""The domain's arithmetic and lifecycle, without I/O."""

from __future__ import annotations

import pytest
from engine.domain.model import (
    CommissionRules,
    CommissionStatus,
    DomainError,
    LineRequest,
    OrderStatus,
    Product,
    TransitionError,
    line_commission_cents,
    next_status,
    price_order,
    summarize,
)

CATALOG = {
    "COFFEE": Product("COFFEE", "Coffee", "food", 1999),
    "MUG": Product("MUG", "Mug", "home", 4500),
    "OLD": Product("OLD", "Old", "home", 100, active=False),
}
RULES = CommissionRules(default_rate_bps=500, category_rates_bps={"food": 250}, product_rates_bps={"MUG": 1000})


@pytest.mark.parametrize(("net", "bps", "cents"), [
    (5, 1000, 0),     # 0.5 -> 0 (half to even)
    (15, 1000, 2),    # 1.5 -> 2
    (25, 1000, 2),    # 2.5 -> 2
    (35, 1000, 4),    # 3.5 -> 4
    (5897, 250, 147),  # 147.425 -> 147
    (1999, 333, 67),  # 66.5667 -> 67
    (0, 10000, 0),
    (123456, 10000, 123456),
])
def test_line_commission_rounds_half_to_even_on_integers(net: int, bps: int, cents: int) -> None:
    assert line_commission_cents(net, bps) == cents


def test_product_rate_beats_category_which_beats_default() -> None:
    assert RULES.rate_for("MUG", "home") == 1000
    assert RULES.rate_for("COFFEE", "food") == 250
    assert RULES.rate_for("TEA", "drinks") == 500


def test_an_order_is_priced_at_catalog_prices_with_discounts_and_per_line_rates() -> None:
    order = price_order("aff", [LineRequest("COFFEE", 3, 100), LineRequest("MUG", 1)], CATALOG, RULES)

    assert [line.net_cents for line in order.lines] == [5897, 4500]
    assert [line.rate_bps for line in order.lines] == [250, 1000]
    assert [line.commission_cents for line in order.lines] == [147, 450]
    assert (order.total_cents, order.commission_cents) == (10397, 597)


def test_the_order_cap_limits_the_commission() -> None:
    capped = CommissionRules(default_rate_bps=5000, order_cap_cents=1000)

    assert price_order("aff", [LineRequest("MUG", 2)], CATALOG, capped).commission_cents == 1000


def test_an_order_without_affiliate_earns_nothing() -> None:
    order = price_order(None, [LineRequest("MUG", 2)], CATALOG, RULES)

    assert order.commission_cents == 0 and all(line.commission_cents == 0 for line in order.lines)


@pytest.mark.parametrize(("line", "path"), [
    (LineRequest("MUG", 0), "lines[1].quantity"),
    (LineRequest("MUG", 1, 4501), "lines[1].discount_cents"),
    (LineRequest("MUG", 1, -1), "lines[1].discount_cents"),
    (LineRequest("NOPE", 1), "lines[1].sku"),
    (LineRequest("OLD", 1), "lines[1].sku"),
])
def test_a_bad_line_is_refused_naming_the_line_and_the_field(line: LineRequest, path: str) -> None:
    with pytest.raises(DomainError) as caught:
        price_order("aff", [LineRequest("COFFEE", 1), line], CATALOG, RULES)

    assert caught.value.field_path == path


def test_a_rate_outside_0_to_10000_bps_is_refused() -> None:
    with pytest.raises(DomainError, match=r"category_rates_bps\.food"):
        CommissionRules(category_rates_bps={"food": 10001})


LEGAL = {("pay", OrderStatus.CREATED): OrderStatus.PAID, ("cancel", OrderStatus.CREATED): OrderStatus.CANCELLED,
         ("refund", OrderStatus.PAID): OrderStatus.REFUNDED}


@pytest.mark.parametrize("action", ["pay", "cancel", "refund"])
@pytest.mark.parametrize("status", list(OrderStatus))
def test_only_the_three_legal_transitions_are_allowed(action: str, status: OrderStatus) -> None:
    if (action, status) in LEGAL:
        assert next_status(status, action) == LEGAL[(action, status)]
    else:
        with pytest.raises(TransitionError):
            next_status(status, action)


def test_a_monthly_summary_adds_each_commission_status_and_counts_orders() -> None:
    summary = summarize("aff", "2026-11", [(CommissionStatus.PENDING, 100, 1), (CommissionStatus.APPROVED, 250, 1),
                                           (CommissionStatus.APPROVED, 50, 1), (CommissionStatus.REVERSED, 7, 1)])

    assert (summary.pending_cents, summary.approved_cents, summary.reversed_cents, summary.order_count) == (
        100, 300, 7, 4)


def test_a_monthly_summary_from_totals_per_status_counts_every_order() -> None:
    """What PocketBase's commission_totals view returns: one row per status with its sum and count."""
    summary = summarize("aff", "2026-11", [(CommissionStatus.APPROVED, 300, 2), (CommissionStatus.REVERSED, 7, 5)])

    assert (summary.pending_cents, summary.approved_cents, summary.reversed_cents, summary.order_count) == (
        0, 300, 7, 7)


@pytest.mark.parametrize(("lines", "path"), [
    ([LineRequest("MUG", 2**53)], "lines[0].quantity"),
    ([LineRequest("MUG", 2_001_599_834_387)], "lines[0].quantity"),  # 4,500 x that is 2^53 + 509
    ([LineRequest("MUG", 1_000_000_000_000)] * 3, "lines"),  # 4.5e15 a line, 1.35e16 the order
])
def test_a_line_or_order_total_beyond_the_exact_bound_is_refused_naming_the_field(lines: list[LineRequest],
                                                                                   path: str) -> None:
    with pytest.raises(DomainError) as caught:
        price_order("aff", lines, CATALOG, RULES)

    assert caught.value.field_path == path


def test_the_largest_exact_total_is_priced_to_the_cent() -> None:
    catalog = {"BIG": Product("BIG", "Big", "x", 2**53 - 1)}

    order = price_order("aff", [LineRequest("BIG", 1)], catalog, CommissionRules(default_rate_bps=10_000))

    assert (order.total_cents, order.commission_cents) == (2**53 - 1, 2**53 - 1)


def test_a_refused_status_change_names_the_status_the_order_is_in() -> None:
    with pytest.raises(TransitionError) as caught:
        next_status(OrderStatus.PAID, "cancel")

    assert (caught.value.action, caught.value.current) == ("cancel", OrderStatus.PAID)
    assert str(caught.value) == "cannot cancel an order that is paid; only a created order"
