"""Orders and commissions, exactly as the platform promises them (issue: the Commission Engine).

Money is integer cents in the tenant's currency; rates are basis points (1 bps = 0.01 %). A line's
commission is `round_half_even(line_net * rate_bps / 10000)`, computed on integers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

MAX_BPS = 10_000
MAX_EXACT = 2**53 - 1
"""The largest amount or quantity stored and read back exactly: PocketBase's numbers are 64-bit floats
(as are JavaScript's), whose integers are exact up to 2^53. Every amount, quantity, line total and
order total is refused beyond it, naming the field, rather than stored one cent off."""


class DomainError(Exception):
    """A request the domain refuses, with the path of the offending field (e.g. `lines[1].quantity`)."""

    def __init__(self, field_path: str, message: str) -> None:
        self.field_path = field_path
        self.message = message
        super().__init__(f"{field_path}: {message}")


class OrderStatus(StrEnum):
    CREATED = "created"
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class CommissionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REVERSED = "reversed"


class TransitionError(Exception):
    """An order status change the lifecycle forbids, or that another change won (HTTP 409)."""

    def __init__(self, action: str, current: OrderStatus, allowed_from: OrderStatus) -> None:
        self.action, self.current = action, current
        super().__init__(f"cannot {action} an order that is {current.value}; only a {allowed_from.value} order")


TRANSITIONS: Mapping[str, tuple[OrderStatus, OrderStatus]] = {
    "pay": (OrderStatus.CREATED, OrderStatus.PAID),
    "cancel": (OrderStatus.CREATED, OrderStatus.CANCELLED),
    "refund": (OrderStatus.PAID, OrderStatus.REFUNDED),
}

COMMISSION_FOR: Mapping[OrderStatus, CommissionStatus] = {
    OrderStatus.CREATED: CommissionStatus.PENDING,
    OrderStatus.PAID: CommissionStatus.APPROVED,
    OrderStatus.CANCELLED: CommissionStatus.REVERSED,
    OrderStatus.REFUNDED: CommissionStatus.REVERSED,
}


def round_half_even_div(numerator: int, denominator: int) -> int:
    """`numerator / denominator` rounded half to even, on integers (both non-negative)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def line_commission_cents(line_net_cents: int, rate_bps: int) -> int:
    return round_half_even_div(line_net_cents * rate_bps, MAX_BPS)


@dataclass(frozen=True)
class CommissionRules:
    """A tenant's rates: product (sku) over category over default. Each 0..10000 bps."""

    default_rate_bps: int = 0
    category_rates_bps: Mapping[str, int] = field(default_factory=dict[str, int])
    product_rates_bps: Mapping[str, int] = field(default_factory=dict[str, int])
    order_cap_cents: int | None = None

    def __post_init__(self) -> None:
        rates = [("default_rate_bps", self.default_rate_bps)]
        rates += [(f"category_rates_bps.{k}", v) for k, v in self.category_rates_bps.items()]
        rates += [(f"product_rates_bps.{k}", v) for k, v in self.product_rates_bps.items()]
        for path, rate in rates:
            if not 0 <= rate <= MAX_BPS:
                raise DomainError(path, f"{rate} is not a rate; expected 0 to {MAX_BPS} basis points")
        if self.order_cap_cents is not None and not 0 <= self.order_cap_cents <= MAX_EXACT:
            raise DomainError("order_cap_cents", f"{self.order_cap_cents}; expected 0 to {MAX_EXACT}")

    def rate_for(self, sku: str, category: str) -> int:
        if sku in self.product_rates_bps:
            return self.product_rates_bps[sku]
        if category in self.category_rates_bps:
            return self.category_rates_bps[category]
        return self.default_rate_bps


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price_cents: int
    active: bool = True


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int
    discount_cents: int = 0


@dataclass(frozen=True)
class PricedLine:
    sku: str
    quantity: int
    unit_price_cents: int
    discount_cents: int
    net_cents: int
    rate_bps: int
    commission_cents: int


@dataclass(frozen=True)
class PricedOrder:
    affiliate_id: str | None
    lines: tuple[PricedLine, ...]
    total_cents: int
    commission_cents: int


def price_order(affiliate_id: str | None, lines: Sequence[LineRequest], catalog: Mapping[str, Product],
                rules: CommissionRules) -> PricedOrder:
    """Price each line at the catalog price and compute the commission. Refuses bad lines."""
    if not lines:
        raise DomainError("lines", "is empty; expected at least one line")
    priced: list[PricedLine] = []
    for i, line in enumerate(lines):
        product = catalog.get(line.sku)
        if product is None or not product.active:
            raise DomainError(f"lines[{i}].sku", f"{line.sku!r} is not an active product of this tenant")
        if not 1 <= line.quantity <= MAX_EXACT:
            raise DomainError(f"lines[{i}].quantity", f"{line.quantity}; expected 1 to {MAX_EXACT}")
        gross = line.quantity * product.price_cents
        if gross > MAX_EXACT:
            raise DomainError(f"lines[{i}].quantity", f"{line.quantity} at {product.price_cents} cents is a line "
                                                      f"total of {gross}; the largest exact amount is {MAX_EXACT}")
        if line.discount_cents < 0 or line.discount_cents > gross:
            raise DomainError(f"lines[{i}].discount_cents",
                              f"{line.discount_cents}; expected 0 to the line's gross {gross}")
        net = gross - line.discount_cents
        rate = rules.rate_for(product.sku, product.category) if affiliate_id else 0
        priced.append(PricedLine(product.sku, line.quantity, product.price_cents, line.discount_cents, net, rate,
                                 line_commission_cents(net, rate)))
    total = sum(p.net_cents for p in priced)
    if total > MAX_EXACT:
        raise DomainError("lines", f"the order total is {total} cents; the largest exact amount is {MAX_EXACT}")
    commission = sum(p.commission_cents for p in priced)
    if rules.order_cap_cents is not None:
        commission = min(commission, rules.order_cap_cents)
    return PricedOrder(affiliate_id, tuple(priced), total, commission if affiliate_id else 0)


def next_status(current: OrderStatus, action: str) -> OrderStatus:
    allowed_from, to = TRANSITIONS[action]
    if current != allowed_from:
        raise TransitionError(action, current, allowed_from)
    return to


@dataclass(frozen=True)
class MonthlySummary:
    affiliate_id: str
    month: str
    pending_cents: int = 0
    approved_cents: int = 0
    reversed_cents: int = 0
    order_count: int = 0


def summarize(affiliate_id: str, month: str, groups: Sequence[tuple[CommissionStatus, int, int]]) -> MonthlySummary:
    """The month's totals from (commission status, cents, orders) groups; one order is a group of one."""
    totals = {status: 0 for status in CommissionStatus}
    for status, cents, _ in groups:
        totals[status] += cents
    return MonthlySummary(affiliate_id, month, totals[CommissionStatus.PENDING], totals[CommissionStatus.APPROVED],
                          totals[CommissionStatus.REVERSED], sum(orders for _, _, orders in groups))
