#!/usr/bin/env python3
"""manpage.py -- write memtally(1) from the command's own --help texts.

usage: manpage.py MEMTALLY_BINARY OUT.1
The page holds `memtally --help` and every `memtally COMMAND --help`
verbatim, so the page and the command cannot disagree."""
import re
import subprocess
import sys


def roff(text):
    out = []
    for line in text.rstrip("\n").split("\n"):
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def main():
    exe, dest = sys.argv[1], sys.argv[2]
    run = lambda *a: subprocess.run([exe, *a], capture_output=True, text=True, check=True).stdout
    main_help = run("--help")
    version = run("--version").split()[-1]
    commands = re.findall(r"^  (\w+)\s{2,}", main_help.split("commands:", 1)[1], re.M)
    page = [f'.TH MEMTALLY 1 "" "memtally {version}" "User Commands"',
            ".SH NAME", "memtally \\- run programs under the memtally heap profiler and read its profiles",
            ".SH SYNOPSIS", ".B memtally", "\\fICOMMAND\\fR [\\fIoptions\\fR]",
            ".SH DESCRIPTION", ".nf", roff(main_help), ".fi", ".SH COMMANDS"]
    for c in commands:
        page += [f".SS {c}", ".nf", roff(run(c, "--help")), ".fi"]
    page += [".SH ENVIRONMENT",
             "The library reads MEMTALLY_* variables (the options table in the README lists each);",
             "setuid and setgid programs ignore them.",
             ".SH EXIT STATUS",
             "0 on success; 2 for bad arguments or an unreadable or hostile profile (one line on stderr);",
             ".B run",
             "exits with the program's own status.",
             ".SH SEE ALSO", "pprof(1), go tool pprof"]
    with open(dest, "w") as f:
        f.write("\n".join(page) + "\n")


if __name__ == "__main__":
    main()
