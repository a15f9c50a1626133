"""Run a command and report its peak resident memory: ``python bench/peak_rss.py CMD ARGS...``.

The benchmark starts the command through this small process rather than directly, because a child
forked from the (large) benchmark process would count the parent's pages in its own peak. Prints
the command's output, then one line ``PEAK-RSS-KB <n>`` (``getrusage(RUSAGE_CHILDREN)``), and exits
with the command's status.
"""

import resource
import subprocess
import sys

if __name__ == "__main__":
    status = subprocess.call(sys.argv[1:])  # noqa: S603
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"PEAK-RSS-KB {peak}", flush=True)
    sys.exit(status)
