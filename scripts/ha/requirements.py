"""Prints the pip requirements of the Home Assistant integrations scripts/ha/check.sh loads, read
from their manifest.json files (with their dependencies, recursively), plus those of the
integrations the frontend's service list imports (helpers/service.py, _base_components): with
--skip-pip Home Assistant installs none of them itself.

    python requirements.py SITE_PACKAGES/homeassistant
"""
import json
import pathlib
import re
import sys

ha = pathlib.Path(sys.argv[1])
source = (ha / "helpers/service.py").read_text()
base = re.search(r"def _base_components.*?import \((.*?)\)", source, re.S)
if not base:
    sys.exit("requirements.py: helpers/service.py has no _base_components import list")
todo = [n.strip() for n in base.group(1).split(",") if n.strip() and not n.strip().startswith("#")]
todo += ["frontend", "config", "mqtt", "image", "event", "text", "sensor"]
seen, requirements = set(), set()
while todo:
    name = todo.pop()
    manifest = ha / "components" / name / "manifest.json"
    if name in seen or not manifest.exists():
        continue
    seen.add(name)
    m = json.loads(manifest.read_text())
    requirements.update(m.get("requirements", []))
    todo += m.get("dependencies", [])
print(" ".join(sorted(requirements)))
