"""The Commission Engine: orders and affiliate commissions per tenant."""
