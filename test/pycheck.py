"""pycheck.py -- the check helper shared by memtally's Python tests

    from pycheck import check, failures

check(cond, what) prints one line, "ok" or "FAIL", and remembers each
failure in failures (a test ends with status 1 when it is not empty)."""

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
