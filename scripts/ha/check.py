"""What a real Home Assistant makes of `glance run --mqtt`: run by scripts/ha/check.sh, which
has started Home Assistant (fresh config dir) and a mosquitto.

    python check.py --ha URL --broker HOST:PORT --glance BIN --log HA_LOG [--screenshot PNG]

1. Onboards Home Assistant and adds the MQTT integration through the REST calls its frontend
   makes (onboarding, /auth/token, the MQTT config flow).
2. Starts glance with an MJPEG stream on stdin that this script writes: first coffee.png, then
   chelsea.png, so the decision changes when this script says so.
3. Checks, through Home Assistant's own API: one device with glance's name, maker, model and
   version; its entities (label, score, decision event, enroll text, snapshot image,
   diagnostics) with the states and attributes glance's own JSON output says they should have;
   the event entity firing on the change; typing a label into the text entity enrolling frames
   in glance; the snapshot served by Home Assistant as a JPEG; every entity unavailable once
   glance stops; no warning or error about glance's payloads in Home Assistant's log.
4. With --screenshot: Chromium logs in and saves the device page.

Prints what it saw; exits non-zero with the reason on the first failed check.
"""
import argparse
import io
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from PIL import Image

PREFIX = "glance/demo"
NODE = "demo"
USER, PASSWORD = "glance", "glance-check-only"


def fail(msg):
    sys.exit(f"check.py: FAILED: {msg}")


def say(msg):
    print(f"check.py: {msg}", flush=True)


def wait_for(what, fn, seconds=60, every=0.5):
    until = time.time() + seconds
    while True:
        v = fn()
        if v:
            return v
        if time.time() > until:
            fail(f"{what} did not happen within {seconds} s")
        time.sleep(every)


class HomeAssistant:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.client_id = self.base + "/"
        self.tokens = None

    def request(self, method, path, body=None, form=False, auth=True, raw=False):
        data, headers = None, {}
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth and self.tokens:
            headers["Authorization"] = "Bearer " + self.tokens["access_token"]
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            payload = r.read()
            return (r.headers.get("Content-Type", ""), payload) if raw else json.loads(payload or b"null")

    def up(self):
        try:
            return self.request("GET", "/api/onboarding", auth=False) is not None
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def onboard(self):
        """The onboarding wizard's calls: owner user, then token, then the remaining steps."""
        code = self.request("POST", "/api/onboarding/users", {
            "client_id": self.client_id, "name": "glance check", "username": USER,
            "password": PASSWORD, "language": "en",
        }, auth=False)["auth_code"]
        self.tokens = self.request("POST", "/auth/token", {
            "grant_type": "authorization_code", "code": code, "client_id": self.client_id,
        }, form=True, auth=False)
        self.request("POST", "/api/onboarding/core_config", {})
        self.request("POST", "/api/onboarding/analytics", {})
        self.request("POST", "/api/onboarding/integration", {
            "client_id": self.client_id, "redirect_uri": self.client_id + "?auth_callback=1",
        })

    def add_mqtt(self, host, port):
        """Settings → Devices & services → Add integration → MQTT, as the frontend does it."""
        flow = self.request("POST", "/api/config/config_entries/flow",
                            {"handler": "mqtt", "show_advanced_options": False})
        if flow.get("type") != "form" or flow.get("step_id") != "broker":
            fail(f"the MQTT config flow began with {flow}")
        done = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                            {"broker": host, "port": port})
        if done.get("type") != "create_entry":
            fail(f"the MQTT config flow ended with {done}")

    def template(self, text):
        return self.request("POST", "/api/template", {"template": text}, raw=True)[1].decode()

    def state(self, entity_id):
        try:
            return self.request("GET", f"/api/states/{entity_id}")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


# Every entity of glance's device, from Home Assistant's registries, as JSON.
DEVICE_TEMPLATE = """
{%- set ns = namespace(devices={}) -%}
{%- for e in integration_entities('mqtt') -%}
  {%- set d = device_id(e) -%}
  {%- if d -%}
    {%- set ents = ns.devices.get(d, []) + [e] -%}
    {%- set ns.devices = dict(ns.devices, **{d: ents}) -%}
  {%- endif -%}
{%- endfor -%}
{%- set out = namespace(list=[]) -%}
{%- for d, ents in ns.devices.items() -%}
  {%- set out.list = out.list + [{
      'id': d, 'name': device_attr(d, 'name'), 'manufacturer': device_attr(d, 'manufacturer'),
      'model': device_attr(d, 'model'), 'sw_version': device_attr(d, 'sw_version'),
      'identifiers': device_attr(d, 'identifiers') | map('list') | list,
      'entities': ents | sort}] -%}
{%- endfor -%}
{{ out.list | tojson }}
"""


class Glance:
    """`glance run --source -` fed JPEG frames by this script, its JSON lines read back."""

    def __init__(self, binary, broker):
        self.proc = subprocess.Popen(
            [binary, "run", "--source", "-", "--format", "json", "--emit", "on-change",
             "--heartbeat", "1", "--mqtt", f"mqtt://{broker}/{PREFIX}", "--mqtt-node", NODE,
             "--mqtt-snapshot"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.frame = None
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._feed, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(json.loads(line))

    def _drain_stderr(self):
        for line in self.proc.stderr:
            sys.stderr.write("glance: " + line.decode(errors="replace"))

    def _feed(self):
        try:
            while self.proc.poll() is None:
                with self.lock:
                    frame = self.frame
                if frame:
                    self.proc.stdin.write(frame)
                    self.proc.stdin.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ValueError):
            pass

    def show(self, photo):
        img = Image.open(photo).convert("RGB").resize((640, 480))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        with self.lock:
            self.frame = buf.getvalue()

    def decisions(self):
        with self.lock:
            return [line for line in self.lines if "label" in line and "seq" in line]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("glance did not stop within 20 s of SIGTERM")


def screenshot(ha, device_id, path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1420",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        # The frontend keeps its tokens in localStorage under hassTokens: log in by putting the
        # ones onboarding gave there, as its own login page would.
        driver.get(ha.base + "/auth/authorize?response_type=code&client_id="
                   + urllib.parse.quote(ha.client_id))
        tokens = dict(ha.tokens, hassUrl=ha.base, clientId=ha.client_id,
                      expires=int(time.time() * 1000) + ha.tokens["expires_in"] * 1000)
        driver.execute_script("localStorage.setItem('hassTokens', arguments[0]);", json.dumps(tokens))
        driver.get(f"{ha.base}/config/devices/device/{device_id}")
        # The page is web components in shadow roots; wait until its text names the entities.
        text = lambda: driver.execute_script("""
            const walk = (n) => { let t = ''; if (n.shadowRoot) t += walk(n.shadowRoot);
              for (const c of n.childNodes) t += c.nodeType === 3 ? c.textContent : walk(c); return t; };
            return walk(document.body);""")
        try:
            wait_for("the device page", lambda: all(w in text() for w in ("Label", "Score", "Enroll label")), 60)
        except SystemExit:
            driver.save_screenshot(path)
            say(f"what the browser showed instead: {path}; its text: {text()[:300]!r}")
            for entry in driver.get_log("browser")[-20:]:
                say(f"browser console: {entry['level']} {entry['message'][:300]}")
            raise
        time.sleep(3)  # images and the snapshot card load after the text
        driver.save_screenshot(path)
        say(f"screenshot of the device page: {path}")
    finally:
        driver.quit()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ha", required=True)
    ap.add_argument("--broker", required=True)
    ap.add_argument("--glance", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--screenshot")
    a = ap.parse_args()
    host, port = a.broker.rsplit(":", 1)

    ha = HomeAssistant(a.ha)
    wait_for("Home Assistant answering", ha.up, 240, 1)
    ha.onboard()
    ha.add_mqtt(host, int(port))
    version = ha.request("GET", "/api/config")["version"]
    say(f"Home Assistant {version} onboarded, MQTT integration added")

    glance = Glance(a.glance, a.broker)
    try:
        glance.show("tests/fixtures/photos/coffee.png")
        first = wait_for("glance's first decision", lambda: glance.decisions(), 120)[0]
        say(f"glance decided {first['label']} {first['score']:.3f}")

        # Home Assistant adds the components of one discovery message one by one: wait for all
        # ten (label, score, decision, enroll, snapshot, five diagnostics).
        devices = wait_for("glance's device with its ten entities in Home Assistant",
                           lambda: (ds := [d for d in json.loads(ha.template(DEVICE_TEMPLATE))
                                           if ["mqtt", f"glance_{NODE}"] in d["identifiers"]])
                           and len(ds[0]["entities"]) >= 10 and ds, 60)
        if len(devices) != 1:
            fail(f"expected one device, found {devices}")
        dev = devices[0]
        for key, want in [("name", f"glance {NODE}"), ("manufacturer", "glance"),
                          ("model", "glance edge classifier")]:
            if dev[key] != want:
                fail(f"device {key} is {dev[key]!r}, glance sent {want!r}")
        if not dev["sw_version"]:
            fail("device has no sw_version")
        say(f"device {dev['name']!r} ({dev['id']}): {', '.join(dev['entities'])}")

        def entity(domain, name):
            for e in dev["entities"]:
                s = ha.state(e)
                if e.startswith(domain + ".") and s and s["attributes"].get("friendly_name") == f"glance {NODE} {name}":
                    return e
            fail(f"no {domain} entity named {name!r} among {dev['entities']}")

        label_e, score_e = entity("sensor", "Label"), entity("sensor", "Score")
        event_e, enroll_e = entity("event", "Decision"), entity("text", "Enroll label")
        image_e, store_e = entity("image", "Snapshot"), entity("sensor", "Stored examples")
        fps_e, latency_e = entity("sensor", "Frame rate"), entity("sensor", "Latency")
        diagnostics = [fps_e, latency_e, store_e, entity("sensor", "Frames dropped"),
                       entity("sensor", "MQTT messages dropped")]

        # The label and score sensors say what glance said.
        st = wait_for("the label sensor to show glance's label",
                      lambda: (s := ha.state(label_e)) and s["state"] == first["label"] and s, 30)
        score = ha.state(score_e)
        if abs(float(score["state"]) - round(first["score"] * 100, 1)) > 0.051:
            fail(f"score sensor {score['state']} vs glance's {first['score']}")
        if score["attributes"].get("unit_of_measurement") != "%":
            fail(f"score unit {score['attributes']}")
        if score["attributes"].get("source") != first["source"]:
            fail(f"score attributes {score['attributes']} vs glance's source {first['source']!r}")
        say(f"{label_e} = {st['state']!r}, {score_e} = {score['state']} %")

        ev = ha.state(event_e)
        types = ev["attributes"].get("event_types", [])
        if "unknown" not in types or first["label"] not in types or len(types) != 1001:
            fail(f"event_types has {len(types)} entries, want the 1000 ImageNet classes + unknown")

        # A change of decision: the event entity fires with glance's from/to/score.
        glance.show("tests/fixtures/photos/chelsea.png")
        second = wait_for("glance's decision on the second photo",
                          lambda: [d for d in glance.decisions() if d["label"] != first["label"]], 60)[0]
        ev = wait_for("the event entity to fire",
                      lambda: (s := ha.state(event_e)) and s["attributes"].get("event_type") == second["label"] and s, 30)
        if ev["attributes"].get("from") != first["label"] or abs(ev["attributes"].get("score", -1) - second["score"]) > 1e-6:
            fail(f"event attributes {ev['attributes']} vs glance's change {first['label']} → {second}")
        wait_for("the label sensor to follow", lambda: ha.state(label_e)["state"] == second["label"], 30)
        say(f"{event_e} fired {ev['attributes']['event_type']!r} from {ev['attributes']['from']!r}")

        # The snapshot, through Home Assistant's image proxy, is the JPEG of that frame.
        def snapshot():
            s = ha.state(image_e)
            if not s or s["state"] in ("unknown", "unavailable"):
                return None
            ctype, body = ha.request("GET", f"/api/image_proxy/{image_e}", raw=True)
            return ctype, body
        ctype, body = wait_for("a snapshot in the image entity", snapshot, 30)
        pic = Image.open(io.BytesIO(body))
        if ctype != "image/jpeg" or pic.format != "JPEG" or pic.size != (640, 480):
            fail(f"snapshot is {ctype} {pic.format} {pic.size}")
        say(f"{image_e}: {ctype} {pic.size[0]}x{pic.size[1]}")

        # Diagnostics read glance's stats.
        wait_for("the frame rate diagnostic", lambda: (s := ha.state(fps_e)["state"]) not in ("unknown", "unavailable") and float(s) > 0, 30)
        for e in diagnostics:
            s = ha.state(e)["state"]
            try:
                float(s)
            except ValueError:
                fail(f"{e} is {s!r}, not a number")
        say("diagnostics: " + ", ".join(f"{e}={ha.state(e)['state']}" for e in diagnostics))

        # Typing a label into the text entity enrolls frames on the board.
        ha.request("POST", "/api/services/text/set_value", {"entity_id": enroll_e, "value": "chelsea"})
        wait_for("the stored examples diagnostic to count the enrolled frames",
                 lambda: (s := ha.state(store_e)["state"]) not in ("unknown", "unavailable") and int(float(s)) >= 10, 60)
        wait_for("chelsea among the event types (discovery re-sent)",
                 lambda: "chelsea" in ha.state(event_e)["attributes"].get("event_types", []), 30)
        say(f"text.set_value 'chelsea' → {store_e} = {ha.state(store_e)['state']}, 'chelsea' is an event type")
        # The photo now matches its enrolled examples: the decision, and Home Assistant's event
        # for it, say chelsea (an event type it did not list yet would be dropped with a warning).
        wait_for("the label sensor to say chelsea", lambda: ha.state(label_e)["state"] == "chelsea", 30)
        wait_for("the event entity to fire chelsea",
                 lambda: ha.state(event_e)["attributes"].get("event_type") == "chelsea", 30)
        say(f"{label_e} = 'chelsea' and {event_e} fired 'chelsea'")

        if a.screenshot:
            screenshot(ha, dev["id"], a.screenshot)
    finally:
        glance.stop()

    # Stopped, glance says offline: every entity becomes unavailable.
    wait_for("every entity unavailable after glance stopped",
             lambda: all(ha.state(e)["state"] == "unavailable" for e in dev["entities"]), 30)
    say("after SIGTERM every entity of the device is unavailable")

    # Home Assistant's log names no problem with what glance sent.
    log = open(a.log, encoding="utf-8", errors="replace").read()
    bad = [l for l in log.splitlines()
           if re.search(r"\b(WARNING|ERROR)\b", l) and re.search(r"mqtt|glance", l, re.I)]
    if bad:
        fail("Home Assistant's log has MQTT warnings or errors:\n" + "\n".join(bad[:20]))
    say("no MQTT warning or error in Home Assistant's log")


if __name__ == "__main__":
    main()
