#!/usr/bin/env python3
"""Instructions by function, from insn-count.so's `mode=profile` output and an unstripped binary.

    profile.py COUNTS.txt BINARY [TOP]

Prints the TOP (default 30) functions by guest instructions executed, and the same grouped by
crate (the first path segment of the demangled name). Blocks outside BINARY's text (the C
library, libonnxruntime.so, the dynamic loader) are one line, "outside the binary".
Instruction counts under qemu are a proxy for time on the board, not time.
"""
import bisect
import collections
import re
import subprocess
import sys


def main():
    counts_path, binary = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    entry, blocks, total = None, collections.Counter(), 0
    with open(counts_path) as f:
        for line in f:
            w = line.split()
            if w[0] == "entry":
                entry = int(w[1])
            elif w[0] == "tb":
                blocks[int(w[1])] += int(w[2])
            elif w[0] == "total":
                total = int(w[1])
    if entry is None:
        sys.exit(f"{counts_path}: no `entry` line (was the plugin run with mode=profile?)")
    header = subprocess.run(["readelf", "-h", binary], capture_output=True, text=True, check=True)
    e_entry = int(re.search(r"Entry point address:\s+0x([0-9a-f]+)", header.stdout).group(1), 16)
    nm = "aarch64-linux-gnu-nm" if "aarch64" in binary else "arm-linux-gnueabihf-nm"
    out = subprocess.run([nm, "-C", "-n", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    starts, names = [], []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        # Local labels inside assembly kernels (".per_row_max") belong to the kernel around them.
        if len(parts) == 3 and parts[1] in "tTwW" and not parts[2].startswith("."):
            starts.append(int(parts[0], 16))
            names.append(parts[2])
    if not starts:
        sys.exit(f"{binary}: no symbols (build it unstripped: CARGO_PROFILE_RELEASE_STRIP=none)")
    end = starts[-1] + (1 << 20)
    # Where qemu loads the binary: its first executable mapping, from qemu's own page log
    # (`-d page`). qemu 7.2's qemu_plugin_entry_code() is no help: for a PIE it was 32 MiB above
    # the entry point plus the load bias. The load address is fixed for a binary and a qemu.
    qemu = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"] if "aarch64" in binary else \
        ["qemu-arm", "-L", "/usr/arm-linux-gnueabihf"]
    log = subprocess.run(qemu + ["-d", "page", binary, "--version"], capture_output=True,
                         text=True).stderr
    found = re.search(r"^([0-9a-f]+)-[0-9a-f]+ [0-9a-f]+ r-x", log, re.M)
    if not found:
        sys.exit(f"{binary}: qemu -d page shows no executable mapping")
    bias = int(found.group(1), 16)
    if header.stdout.find("EXEC (Executable") >= 0:
        bias = 0
    by_fn = collections.Counter()
    for vaddr, n in blocks.items():
        off = vaddr - bias
        i = bisect.bisect_right(starts, off) - 1
        by_fn["(outside the binary)" if i < 0 or off > end else names[i]] += n
    counted = sum(by_fn.values())
    print(f"{counted:,} instructions in {len(blocks):,} blocks (plugin total {total:,})")
    print(f"\n| share | M instructions | function |\n|---:|---:|---|")
    for name, n in by_fn.most_common(top):
        short = re.sub(r"::h[0-9a-f]{16}$", "", name)
        print(f"| {100 * n / counted:.1f}% | {n / 1e6:.1f} | `{short[:110]}` |")
    by_crate = collections.Counter()
    for name, n in by_fn.items():
        crate = re.sub(r"^[<&\s]*", "", name).split("::")[0].split("<")[0]
        by_crate[crate] += n
    print(f"\n| share | M instructions | crate |\n|---:|---:|---|")
    for name, n in by_crate.most_common(15):
        print(f"| {100 * n / counted:.1f}% | {n / 1e6:.1f} | {name} |")


if __name__ == "__main__":
    main()
