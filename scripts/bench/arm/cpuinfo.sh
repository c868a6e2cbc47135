#!/usr/bin/env bash
# Prints /proc/cpuinfo as a board's kernel does (four cores) for one emulated core:
#   scripts/bench/arm/cpuinfo.sh a53|a72|a76|a7
# qemu-user 7.2 passes the host's x86 /proc/cpuinfo through to the guest: onnxruntime's cpuinfo
# library then crashes and tract misses fp16 and the core's tuned kernels (it reads "CPU part"
# and the Features line). Callers bind-mount this text over /proc/cpuinfo in a private mount
# namespace: unshare -m sh -c 'mount --bind FILE /proc/cpuinfo && exec qemu-aarch64 -cpu … BIN'.
# The Features lines are those of a Pi 3 (A53), Pi 4 (A72), Pi 5 (A76) and Pi 2 (A7) kernel.
set -euo pipefail
arch=8 variant=0x0 model=""
case "${1:-}" in
  a53) feat="fp asimd evtstrm crc32 cpuid"; part=0xd03; rev=4 ;;
  a72) feat="fp asimd evtstrm crc32 cpuid"; part=0xd08; rev=3 ;;
  a76) feat="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
       part=0xd0b; variant=0x4; rev=1 ;;
  a7)  feat="half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm"
       part=0xc07; rev=5; arch=7; model="model name	: ARMv7 Processor rev 5 (v7l)" ;;
  *) echo "usage: $0 a53|a72|a76|a7" >&2; exit 2 ;;
esac
for i in 0 1 2 3; do
  printf 'processor\t: %s\n' "$i"
  if [ -n "$model" ]; then printf '%s\n' "$model"; fi
  printf 'BogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: %s\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
    "$feat" "$arch" "$variant" "$part" "$rev"
done
