"""The web console in a real headless Chromium (Debian's chromium + chromium-driver, selenium
from PyPI), against a running `glance run --web`: the page shows the live frame and the
decision (a screenshot is taken and looked at), an enrol click adds examples to the store, and
/metrics parses with prometheus-client's parser.

    python web_console.py URL SCREENSHOT.png

Prints one JSON line of what it saw; exits non-zero with the reason on any failure. Run by
tests/web.rs.
"""
import json
import sys
import time
import urllib.request

from PIL import Image, ImageStat
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By


def wait_for(what, fn, seconds=30):
    until = time.time() + seconds
    while time.time() < until:
        try:
            v = fn()
        except StaleElementReferenceException:
            # The page re-rendered the element between finding and reading it (the store table
            # is redrawn on every refresh): not yet, look again.
            v = None
        if v:
            return v
        time.sleep(0.2)
    sys.exit(f"web_console.py: {what} did not happen within {seconds} s")


def main():
    url, shot = sys.argv[1], sys.argv[2]
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=800,1100"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(url)
        badge = wait_for(
            "a decision in the badge",
            lambda: (t := driver.find_element(By.ID, "badge").text) != "…" and t,
        )
        width = wait_for(
            "a live frame in the page",
            lambda: driver.execute_script("return document.getElementById('live').naturalWidth"),
        )
        rows = wait_for("the top-k table", lambda: driver.find_elements(By.CSS_SELECTOR, "#topk tr"))
        driver.save_screenshot(shot)
        # Look at it: the live view's box must hold a picture, not a flat colour.
        rect = driver.execute_script(
            "const r = document.getElementById('live').getBoundingClientRect();"
            "return [r.left, r.top, r.right, r.bottom, window.devicePixelRatio];"
        )
        img = Image.open(shot).convert("L")
        dpr = rect[4]
        box = tuple(int(v * dpr) for v in rect[:4])
        spread = ImageStat.Stat(img.crop(box)).stddev[0]
        if spread < 10:
            sys.exit(f"web_console.py: the live view is flat (grey stddev {spread:.1f})")

        label = driver.find_element(By.ID, "label")
        label.clear()
        label.send_keys("mug")
        frames = driver.find_element(By.ID, "frames")
        frames.clear()
        frames.send_keys("3")
        driver.find_element(By.ID, "enroll-button").click()
        msg = wait_for(
            "the enrol reply",
            lambda: "enrolled" in (t := driver.find_element(By.ID, "msg").text) and t,
            60,
        )
        state = json.load(urllib.request.urlopen(url + "api/state"))
        store = {e["label"]: e["examples"] for e in state["store"]}
        if store.get("mug") != 3:
            sys.exit(f"web_console.py: the store after the enrol click is {store}")
        wait_for(
            "the store row in the page",
            lambda: any("mug" in r.text for r in driver.find_elements(By.CSS_SELECTOR, "#store tr")),
        )

        text = urllib.request.urlopen(url + "metrics").read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name in ("glance_frames", "glance_decisions", "glance_stage_seconds", "glance_store_examples"):
            if name not in families:
                sys.exit(f"web_console.py: /metrics has no {name}: {sorted(families)}")
        if families["glance_stage_seconds"].type != "histogram":
            sys.exit("web_console.py: glance_stage_seconds is not a histogram")
        print(json.dumps({
            "badge": badge, "natural_width": width, "top_k_rows": len(rows),
            "live_view_stddev": round(spread, 1), "enrol_message": msg, "store": store,
            "metric_families": len(families),
        }))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
