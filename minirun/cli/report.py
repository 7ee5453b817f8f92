"""How the CLI ends on an error: one line on stderr and an exit code (no click needed)."""
import sys

from ..errors import MinirunError


def report(exc, debug):
    """Print *exc* the way minirun reports errors; return the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if debug:
        import traceback   # only with --debug
        traceback.print_exception(exc)
        if getattr(exc, "detail", ""):
            print(exc.detail, file=sys.stderr)
    if isinstance(exc, MinirunError):
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not debug:
        print(f"Error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
    return 1


def each(items, action, prefix=lambda e: "Error"):
    """Docker's many-object commands (rm, rmi, network rm): *action* on each item, failures
    reported one line each, exit 1 at the end if any failed."""
    failed = False
    for item in items:
        try:
            action(item)
        except MinirunError as e:
            print(f"{prefix(e)}: {e}", file=sys.stderr)
            failed = True
    if failed:
        raise SystemExit(1)
