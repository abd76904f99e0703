#!/usr/bin/env python3
"""Replaces a generated block of README.md with the output of a command.

  tools/update-readme.py NAME [--fence] -- COMMAND...   runs COMMAND, puts its stdout between
  <!-- BEGIN NAME --> and <!-- END NAME --> in README.md (--fence: inside a ``` code block).
  The figures in README come only from here.
"""
import pathlib
import subprocess
import sys

def main() -> int:
    args = sys.argv[1:]
    fence = len(args) > 1 and args[1] == "--fence"
    if fence:
        del args[1]
    if len(args) < 3 or args[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    name, cmd = args[0], args[2:]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    if fence:
        out = f"```\n{out}\n```"
    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text()
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if begin not in text or end not in text:
        print(f"README.md has no {begin} ... {end} block", file=sys.stderr)
        return 1
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{out}\n{end}{tail}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
