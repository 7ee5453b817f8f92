"""Summarize a pytest -rfE report of docker-py's integration suite against minirund: the
totals, then the failures grouped by why (what minirun does not do, what the stand-in image
or the offline machine cannot give, and the rest, which are the ones to look at)."""
import re
import sys

# (group, pattern on "file::test - reason"), first match wins
GROUPS = [
    ("swarm, services, secrets, configs, nodes, plugins (minirun has no swarm)",
     r"(service|swarm|secret|config|node|plugin)s?_test\.py|init_swarm|not a swarm manager"),
    ("build", r"build"),
    ("pulls from the internet (an offline machine)", r"cannot reach registry"),
    ("client-side docker contexts", r"context_api_test"),
    ("what minirun refuses (a one-line 400 naming it)", r"is not supported by minirun|"
                                                        r"are not supported by minirun"),
]


def main(path):
    text = open(path, errors="replace").read()
    totals = text.strip().splitlines()[-1]
    failures = re.findall(r"^(?:FAILED|ERROR) (\S+)(?: - (.*))?$", text, re.M)
    groups = {name: [] for name, _ in GROUPS}
    rest = []
    for test, reason in failures:
        line = f"{test} - {reason or ''}"
        for name, pattern in GROUPS:
            if re.search(pattern, line):
                groups[name].append(line)
                break
        else:
            rest.append(line)
    print(totals)
    for name, lines in groups.items():
        print(f"{len(lines):4d}  {name}")
    print(f"{len(rest):4d}  the rest:")
    for line in rest:
        print("      " + line[:160])


if __name__ == "__main__":
    main(sys.argv[1])
