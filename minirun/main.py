"""The ``minirun`` entry point.

A plain ``minirun run …`` goes straight to the engine (see cli/runflags.py:
importing click would cost more than starting the container); everything
else goes through the click command tree in cli/.
"""
import gc
import os
import sys


def main():
    from .cli.runflags import parse_fast             # imports here: `python -m minirun` and
    fast = parse_fast(sys.argv[1:], os.environ)
    if fast is None:
        from .cli.app import main as click_main      # click only off the run path
        return click_main()
    # No cycle collector: a run is one start and one wait, and the collector would run ~10
    # times over the start's imports (~1 ms) to find nothing; what cycles a run makes end
    # with it.
    gc.disable()
    g, options = fast
    from .cli.report import report                  # the entry point pays only for what
    from .cli.runner import run_any                 # the command it runs needs
    try:
        code = run_any(g.root, g.host, options)
    except (Exception, KeyboardInterrupt) as e:
        code = report(e, g.debug)
    _exit_now(code)


def _exit_now(code):
    """End a run without the interpreter's shutdown. Its one costly step is closing the state
    database: the last connection to close checkpoints the WAL into state.db with three
    fsyncs and deletes it, and the next start makes it again (~8 ms of each run, measured).
    Left open, nothing is lost: every change was committed (sqlite's WAL survives a process
    that ends, by design), and sqlite checkpoints the WAL itself as it grows. Nothing else is
    held: no thread, no atexit handler, every undo of the run has already run."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):     # a reader that went away: the rest is lost anyway
            pass
    os._exit(code)
