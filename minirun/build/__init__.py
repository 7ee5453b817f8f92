"""Building images from a Dockerfile, as Docker's classic builder does.

``dockerfile`` reads the language, ``words`` substitutes variables, ``patterns``
matches .dockerignore and COPY's globs, ``context`` reads the files a build may
copy, ``steps`` runs a step's container (in this process or through minirund's
engine), and ``builder`` puts them together: each instruction a step, each step
an image, reused from the cache when nothing it depends on changed.
"""
