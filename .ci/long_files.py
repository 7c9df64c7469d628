#!/usr/bin/env python3
"""long_files.py: lists the Rust source files over a line limit, tests aside.

Usage: .ci/long_files.py [-p PACKAGE]... [--exclude PACKAGE]... [--max N]

Looks under the `src/` of every workspace member (or only the packages named with -p,
less those named with --exclude)
and counts the lines of each `.rs` file, leaving out test files: those named
`tests.rs` or under a `tests/` folder. Prints each file over the limit (500 unless
--max says otherwise) with its length and exits 1 if there is one.
"""

import json
import os
import subprocess
import sys


def main():
    args = sys.argv[1:]
    packages = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
    excluded = [args[i + 1] for i, a in enumerate(args) if a == "--exclude"]
    limit = int(args[args.index("--max") + 1]) if "--max" in args else 500
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1"], check=True, capture_output=True, text=True
        ).stdout
    )
    long_files, checked = [], 0
    for package in meta["packages"]:
        if packages and package["name"] not in packages or package["name"] in excluded:
            continue
        src = os.path.join(os.path.dirname(package["manifest_path"]), "src")
        for directory, folders, files in os.walk(src):
            folders[:] = sorted(folder for folder in folders if folder != "tests")
            for name in sorted(files):
                if not name.endswith(".rs") or name == "tests.rs":
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    lines = sum(1 for _ in f)
                checked += 1
                if lines > limit:
                    long_files.append((lines, os.path.relpath(path)))
    for lines, path in sorted(long_files, reverse=True):
        print(f"{lines:6} {path}")
    if long_files:
        print(f"{len(long_files)} of {checked} source files over {limit} lines")
        return 1
    print(f"no source file over {limit} lines ({checked} checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
