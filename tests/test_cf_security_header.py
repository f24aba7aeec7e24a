"""The HSTS zone setting in the one shape that does not diff forever (issue #20 item 17).

`cloudflare_zone_setting.value` is a dynamic attribute compared with the API's read-back
(terraform-provider-cloudflare `internal/services/zone_setting/schema.go`: `schema.DynamicAttribute` with
`customfield.NormalizeDynamicPlanModifier()`). The perpetual diffs reported against it came from other
shapes than the API's: #6436 (provider 5.8.4 and 5.12.0) sent the flat v4 shape `{enabled, max_age,
include_subdomains, nosniff}` without `strict_transport_security` (#6315: the same shape crashes the
provider); #6447 (5.12.0) wrapped the object in a list. Upstream's own acceptance test
(`internal/services/zone_setting/testdata/hsts.tf`, `TestAccCloudflareZoneSetting_HSTS` at v5.19.1, whose
steps fail on a non-empty plan after apply) sends `value = { strict_transport_security = { enabled,
include_subdomains, max_age, nosniff, preload } }`: an object, snake_case keys, all five fields. The Pulumi
registry example for ZoneSetting (pulumi_cloudflare 6.23.1 `zone_setting.py`) shows camelCase keys
(`strictTransportSecurity`, `maxAge`): `value` is passed through untranslated, so those keys would reach the
API as unknown fields and never read back equal. This pins the shape the program sends."""

from __future__ import annotations

from typing import Any, cast

import pytest

from infra.plan import Plan
from tests.conftest import STACKS

# https://developers.cloudflare.com/api/resources/zones/subresources/settings/ (security_header):
# value.strict_transport_security {enabled: bool, include_subdomains: bool, max_age: number, nosniff: bool,
# preload: bool}.
BOOLEANS = {"enabled", "include_subdomains", "nosniff", "preload"}


@pytest.mark.parametrize("stack", STACKS)
def test_hsts_is_sent_as_the_apis_nested_object_with_all_five_fields(stack: str,
                                                                     committed_plans: dict[str, Plan]) -> None:
    [setting] = [r for r in committed_plans[stack].resources if r.type == "cloudflare:index/zoneSetting:ZoneSetting"
                 and r.inputs["settingId"] == "security_header"]
    value = setting.wire_inputs["value"]

    assert isinstance(value, dict)  # not a list (#6447)
    shape = cast(dict[str, Any], value)
    assert list(shape) == ["strict_transport_security"]  # not the flat v4 shape (#6436)
    hsts = cast(dict[str, Any], shape["strict_transport_security"])
    assert set(hsts) == BOOLEANS | {"max_age"}  # snake_case, nothing left for the API to default
    assert all(type(hsts[key]) is bool for key in BOOLEANS)
    assert type(hsts["max_age"]) is int and hsts["max_age"] > 0
