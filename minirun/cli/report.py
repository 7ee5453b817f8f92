"""How the CLI ends on an error: one line on stderr and an exit code (no click needed)."""
import sys

from ..errors import MinirunError


def report(exc, debug):
    """Print *exc* the way minirun reports errors; return the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if debug:
        import traceback
        traceback.print_exception(exc)
    if isinstance(exc, MinirunError):
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not debug:
        print(f"Error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
    return 1
