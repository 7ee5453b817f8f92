"""The ``minirun`` entry point.

A plain ``minirun run …`` goes straight to the engine (see cli/runflags.py:
importing click would cost more than starting the container); everything
else goes through the click command tree in cli/.
"""
import os
import sys


def main():
    from .cli.runflags import parse_fast             # imports here: `python -m minirun` and
    fast = parse_fast(sys.argv[1:], os.environ)
    if fast is None:
        from .cli.app import main as click_main      # click only off the run path
        return click_main()
    g, options = fast
    from .cli.report import report                  # the entry point pays only for what
    from .cli.runner import run_any                 # the command it runs needs
    try:
        code = run_any(g.root, g.host, options)
    except (Exception, KeyboardInterrupt) as e:
        code = report(e, g.debug)
    sys.stdout.flush()
    sys.exit(code)
