"""Print `policies/POLICIES.md` from the pack table: `python -m policies.doc > policies/POLICIES.md`."""

from __future__ import annotations

from policies.pack import PACK_NAME, RULES
from policies.rules.reviewed_types import REFUSED, REVIEWED
from policies.waivers import MAX_DAYS


def render() -> str:
    lines = [
        f"# {PACK_NAME}",
        "",
        "Generated from `policies/pack.py` by `python -m policies.doc`; a test fails when this file drifts.",
        "Run offline by `python -m infra plan` (exit code 1 on a mandatory violation) and by",
        "`pulumi preview --policy-pack policies`.",
        "",
        "Every rule denies by default: it lists what is allowed and refuses the rest, values the engine does",
        "not know yet included (an unknown member of an IAM grant is a mandatory violation, not an advisory",
        "one). A rule that cannot read its inputs reports a mandatory violation naming the error. Production",
        "is the stack: any stack not named `integration` or `staging` is held to prod's rules.",
        "",
        "A stack waives one rule for one resource and one subject under `platform:waivers`: `rule`,",
        "`resource`, `subject` (a tenant's slug, one of its hosts, or the resource itself; never a zone),",
        f"`expires` (YYYY-MM-DD, at most {MAX_DAYS} days ahead), `ticket` (like OPS-412) and a `reason` that",
        "says why. IAM rules cannot be waived in prod. The pack checks every waiver itself (PLAT-WAIVER-001):",
        "one that is malformed, expired, for an unknown resource, or that waives nothing is a violation.",
        "",
        "| id | level | severity | what | denies by default | why | requirement |",
        "|----|-------|----------|------|-------------------|-----|-------------|",
    ]
    lines += [f"| {r.id} | {r.level} | {r.severity} | {r.title} | {r.denies} | {r.why} | {r.requirement} |"
              for r in RULES]
    lines += [
        "",
        "## Resource types",
        "",
        "Every resource type the program may declare, in any stack, and the rules that review it (PLAT-TYPE-001",
        "refuses every other type; a test fails when a plan of the three stacks declares one not listed). A type",
        "reviewed by no rule in particular says why it needs none. Components of this program (`platform:*`)",
        "declare nothing themselves.",
        "",
        "| type | reviewed by | what it is |",
        "|------|-------------|------------|",
    ]
    lines += [f"| `{t}` | {', '.join(rules) or 'nothing in particular'} | {note} |"
              for t, (rules, note) in sorted(REVIEWED.items())]
    lines += ["", "Refused outright:", "", "| type | why |", "|------|-----|"]
    lines += [f"| `{t}` | {why} |" for t, why in sorted(REFUSED.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
