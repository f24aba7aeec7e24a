"""`python -m components.observability rules|rule-tests`: print a generated file."""

import sys

from components.observability.rules import dump, rule_groups, rule_tests
from components.observability.spec import load

if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    generators = {"rules": rule_groups, "rule-tests": rule_tests}
    if which not in generators:
        sys.exit("usage: python -m components.observability rules|rule-tests")
    sys.stdout.write(dump(generators[which](load())))
