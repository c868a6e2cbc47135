#!/usr/bin/env python3
"""Turns the JSON lines of scripts/bench/backbone.sh into a Markdown table (stdin → stdout)."""
import json
import os
import platform
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.machine())
runs = rows[0]["runs"]
print(f"Host: {cpu}, {os.cpu_count()} cores; 1 thread; {runs} timed runs after 5 warm-up runs; "
      "input: coffee.png centre-cropped to each backbone's side (Lite0 224², Lite1 240², Lite2 260²).\n")
print("| pass | runtime | model file | median ms | p10 ms | p90 ms | load ms |")
print("|---|---|---|---|---|---|---|")
half = len(rows) // 2
for i, r in enumerate(rows):
    model = os.path.basename(r["model"]).replace("efficientnet_", "").replace(".onnx", "")
    model = model.replace("efficientnet-", "").replace("_", " ")
    print(f"| {1 + i // half} | {r['runtime']} | {model} | {r['median_ms']:.1f} | {r['p10_ms']:.1f} "
          f"| {r['p90_ms']:.1f} | {r['load_ms']:.0f} |")
