#!/usr/bin/env python3
"""Writes the aarch64 FP16 depthwise kernels of src/depthwise.rs (between its GENERATED markers).

    python3 crates/tract-f16/gen-kernels.py

The kernels are unrolled over the taps, so that each FMLA names its weight's register (and lane)
directly; this script is their source. Channels first (`k{K}s{S}`, one channel plane): eight
points of an output row per vector, each tap's weight a lane of v0..v3, stride 2 through LD2.
Channels last (`c{K}`, any stride: the caller's steps carry it): eight channels of one output
point per vector, each tap's eight weights a whole register v0..v24 for the whole plane.
Every kernel clamps its sums to [lo, hi] before storing them (FMAX, FMIN: a ReLU6 that follows
the convolution, folded in by `depthwise::fuse_clamps`; ±inf when none does).
"""
import pathlib
import re

FILE = pathlib.Path(__file__).parent / "src" / "depthwise.rs"
I = " " * 16  # indentation of an asm! template line


def q(line):
    return f'{I}"{line}",'


def first_taps(k, s):
    """One output vector, channels first: v16 = bias (v4) + Σ taps; row pointers r0..r{k-1}."""
    out = [q("mov v16.16b, v4.16b")]
    for ky in range(k):
        r = f"{{r{ky}}}"
        loads = []
        if s == 1:
            for kx in range(k):
                off = "" if kx == 0 else f", #{2 * kx}"
                out.append(q(f"{'ldr' if kx == 0 else 'ldur'} q{17 + kx}, [{r}{off}]"))
                loads.append((kx, 17 + kx))
        else:
            # LD2 splits 16 points into even and odd ones: taps kx and kx + 1 of 8 outputs.
            for kx in range(0, k, 2):
                a, b = 17 + kx, 18 + kx
                if kx == 0:
                    out.append(q(f"ld2 {{{{v{a}.8h, v{b}.8h}}}}, [{r}]"))
                else:
                    out.append(q(f"add {{t}}, {r}, #{2 * kx}"))
                    out.append(q(f"ld2 {{{{v{a}.8h, v{b}.8h}}}}, [{{t}}]"))
                loads.append((kx, a))
                if kx + 1 < k:
                    loads.append((kx + 1, b))
        for kx, reg in loads:
            t = ky * k + kx
            out.append(q(f"fmla v16.8h, v{reg}.8h, v{t // 8}.h[{t % 8}]"))
    return out


def channel_first(k, s):
    nk = (k * k + 7) // 8
    kregs = ", ".join(f"v{i}.8h" for i in range(nk))
    o = [f"    /// {k}×{k}, stride {s}, channels first.",
         '    #[target_feature(enable = "fp16")]',
         f"    pub(super) unsafe fn k{k}s{s}(p: &Plane) {{",
         "        // SAFETY: the caller (`Plane`'s contract) guarantees every read and write below in",
         "        // bounds.",
         "        unsafe {",
         "            std::arch::asm!(",
         q(f"ld1 {{{{{kregs}}}}}, [{{k}}]"),
         q("ld1r {{v4.8h}}, [{b}]"),
         q("ld2r {{v5.8h, v6.8h}}, [{cl}]"),
         q("2:"),
         q("mov {r0}, {src}")]
    o += [q(f"add {{r{ky}}}, {{r{ky - 1}}}, {{row}}") for ky in range(1, k)]
    o += [q("mov {d}, {dst}"), q("mov {n}, {vectors}"), q("3:")]
    o += first_taps(k, s)
    o += [q("fmax v16.8h, v16.8h, v5.8h"), q("fmin v16.8h, v16.8h, v6.8h")]
    o += [q(f"add {{r{ky}}}, {{r{ky}}}, #{16 * s}") for ky in range(k)]
    # The row's last vector stores only `rem` points when rem > 0 (4, 2, 1 at a time).
    o += [q("subs {n}, {n}, #1"), q("b.ne 4f"), q("cbnz {rem}, 5f"),
          q("4:"), q("str q16, [{d}], #16"), q("cbnz {n}, 3b"), q("b 8f"),
          q("5:"), q("tbz {rem}, #2, 6f"), q("st1 {{v16.d}}[0], [{d}], #8"),
          q("ext v16.16b, v16.16b, v16.16b, #8"),
          q("6:"), q("tbz {rem}, #1, 7f"), q("st1 {{v16.s}}[0], [{d}], #4"),
          q("ext v16.16b, v16.16b, v16.16b, #4"),
          q("7:"), q("tbz {rem}, #0, 8f"), q("st1 {{v16.h}}[0], [{d}]"),
          q("8:"), q("add {src}, {src}, {step}"), q("add {dst}, {dst}, {out_row}"),
          q("subs {rows}, {rows}, #1"), q("b.ne 2b")]
    o += [f"{I}src = inout(reg) p.src => _,",
          f"{I}dst = inout(reg) p.dst => _,",
          f"{I}rows = inout(reg) p.rows => _,",
          f"{I}row = in(reg) p.row_bytes,",
          f"{I}step = in(reg) p.step,",
          f"{I}out_row = in(reg) p.out_row_bytes,",
          f"{I}vectors = in(reg) p.vectors,",
          f"{I}rem = in(reg) p.rem,",
          f"{I}k = in(reg) p.kernel,",
          f"{I}b = in(reg) p.bias,",
          f"{I}cl = in(reg) p.clamp,",
          f"{I}{', '.join(f'r{i} = out(reg) _' for i in range(k))},",
          f"{I}d = out(reg) _, n = out(reg) _,"]
    if s == 2:
        o.append(f"{I}t = out(reg) _,")
    vs = [f'out("v{i}") _' for i in range(nk)] + [f'out("v{i}") _' for i in (4, 5, 6, 16)]
    vs += [f'out("v{i}") _' for i in range(17, 17 + k + (1 if s == 2 and k % 2 else 0))]
    o += [f"{I}{', '.join(vs[i:i + 8])}," for i in range(0, len(vs), 8)]
    o += [f"{I}options(nostack),", "            );", "        }", "    }"]
    return o


def channel_last(k):
    taps = k * k
    o = [f"    /// {k}×{k}, channels last, either stride (the caller's steps carry it).",
         '    #[target_feature(enable = "fp16")]',
         f"    pub(super) unsafe fn c{k}(p: &Block) {{",
         "        // SAFETY: the caller (`Block`'s contract) guarantees every read and write below in",
         "        // bounds.",
         "        unsafe {",
         "            std::arch::asm!(",
         q("ld2r {{v30.8h, v31.8h}}, [{cl}]"),
         q("2:"),
         q("mov {t}, {kernel}")]
    o += [q(f"ld1 {{{{v{t}.8h}}}}, [{{t}}], {{cs}}") for t in range(taps)]
    o += [q("ldr q26, [{bias}], #16"), q("mov {row}, {src}"), q("mov {d}, {dst}"),
          q("mov {y}, {rows}"), q("3:"), q("mov {p}, {row}"), q("mov {x}, {cols}"), q("4:"),
          q("mov v25.16b, v26.16b")]
    for ky in range(k):
        ptr = "{p}"
        if ky > 0:
            ptr = "{q}"
            o.append(q(f"add {{q}}, {{p}}, {{rs{ky}}}"))
        for kx in range(k):
            reg = 27 + kx % 3
            o.append(q(f"ld1 {{{{v{reg}.8h}}}}, [{ptr}], {{cs}}"))
            o.append(q(f"fmla v25.8h, v{reg}.8h, v{ky * k + kx}.8h"))
    o += [q("fmax v25.8h, v25.8h, v30.8h"), q("fmin v25.8h, v25.8h, v31.8h")]
    o += [q("st1 {{v25.8h}}, [{d}], {cs}"), q("add {p}, {p}, {xs}"), q("subs {x}, {x}, #1"),
          q("b.ne 4b"), q("add {row}, {row}, {ys}"), q("subs {y}, {y}, #1"), q("b.ne 3b"),
          q("add {src}, {src}, #16"), q("add {dst}, {dst}, #16"),
          q("add {kernel}, {kernel}, #16"), q("subs {blocks}, {blocks}, #1"), q("b.ne 2b")]
    o += [f"{I}src = inout(reg) p.src => _,",
          f"{I}dst = inout(reg) p.dst => _,",
          f"{I}kernel = inout(reg) p.kernel => _,",
          f"{I}bias = inout(reg) p.bias => _,",
          f"{I}blocks = inout(reg) p.blocks => _,",
          f"{I}rows = in(reg) p.rows,",
          f"{I}cols = in(reg) p.cols,",
          f"{I}cs = in(reg) p.channel_bytes,",
          f"{I}cl = in(reg) p.clamp,"]
    o += [f"{I}rs{ky} = in(reg) p.rows_on[{ky - 1}]," for ky in range(1, k)]
    o += [f"{I}xs = in(reg) p.x_step,",
          f"{I}ys = in(reg) p.y_step,",
          f"{I}t = out(reg) _, row = out(reg) _, d = out(reg) _, y = out(reg) _,",
          f"{I}p = out(reg) _, x = out(reg) _, q = out(reg) _,"]
    vs = [f'out("v{i}") _' for i in list(range(taps)) + [25, 26, 27, 28, 29, 30, 31]]
    o += [f"{I}{', '.join(vs[i:i + 8])}," for i in range(0, len(vs), 8)]
    o += [f"{I}options(nostack),", "            );", "        }", "    }"]
    return o


def main():
    parts = [channel_first(k, s) for k in (3, 5) for s in (1, 2)] + [channel_last(k) for k in (3, 5)]
    body = "\n\n".join("\n".join(p) for p in parts)
    text = FILE.read_text()
    begin = "    // BEGIN GENERATED by gen-kernels.py: edit that, not this.\n"
    end = "    // END GENERATED\n"
    new, n = re.subn(re.escape(begin) + ".*?" + re.escape(end), lambda _: begin + body + "\n" + end,
                     text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{FILE}: expected one GENERATED region, found {n}")
    FILE.write_text(new)


if __name__ == "__main__":
    main()
