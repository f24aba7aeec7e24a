"""`python -m components.observability rules|rule-tests`: print a generated file."""

import sys

from components.observability import dashboards
from components.observability.rules import dump, rule_groups, rule_tests
from components.observability.spec import load

if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    generators = {"rules": rule_groups, "rule-tests": rule_tests}
    if which in generators:
        sys.stdout.write(dump(generators[which](load())))
    elif which == "dashboard" and len(sys.argv) == 3 and sys.argv[2] in dashboards.DASHBOARDS:
        sys.stdout.write(dashboards.render(sys.argv[2]))
    else:
        sys.exit("usage: python -m components.observability rules|rule-tests|dashboard overview|routes|tenants")
