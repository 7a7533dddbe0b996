"""Run a study: ``python sweep.py -m study=dropout scale=quick`` (the same as ``amt sweep -m ...``).

The sweep code is :mod:`amt.sweep`, so that a pip-installed amt runs studies too; conf/sweep.yaml and
conf/study/ list the options.
"""

from amt.sweep import command

if __name__ == "__main__":
    command()
