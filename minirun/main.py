"""The ``minirun`` entry point.

A plain ``minirun run …`` goes straight to the engine (see cli/runflags.py:
importing click would cost more than starting the container); everything
else goes through the click command tree in cli/.
"""
import os
import sys


def main():
    from .cli.runflags import parse_fast
    fast = parse_fast(sys.argv[1:], os.environ)
    if fast is None:
        from .cli.app import main as click_main
        return click_main()
    root, debug, options = fast
    from .cli.report import report
    from .engine.options import RunOptions
    from .engine.run import run_foreground
    try:
        code = run_foreground(os.path.abspath(root), RunOptions(**options))
    except (Exception, KeyboardInterrupt) as e:
        code = report(e, debug)
    sys.stdout.flush()
    sys.exit(code)
