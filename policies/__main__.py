"""Serve the policy pack: `pulumi preview --policy-pack policies` runs this directory."""

from policies.pack import build_pack

build_pack()
