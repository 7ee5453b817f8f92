"""The ``minirun`` command line: the click command tree (app.py, images.py, run.py) and
a click-free fast path for ``run`` (runflags.py). Nothing here imports click at package
import time."""
