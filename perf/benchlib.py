"""What the perf/ benchmark scripts share: progress lines on stderr (stdout
keeps the table or the JSON) and the machine's load, printed with figures
because these machines are shared and noisy."""

import sys


def logger(name):
    """A function that prints "name: text" on stderr."""
    def log(text):
        print("%s: %s" % (name, text), file=sys.stderr, flush=True)
    return log


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
