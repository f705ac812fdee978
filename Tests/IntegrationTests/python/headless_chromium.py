"""Loads a page in headless Chromium (Debian's `chromium`), lets it run in real time until a
JavaScript condition holds, then reports what a JavaScript expression evaluates to and saves a
screenshot. Driven over the DevTools protocol with websocket-client, because --dump-dom and
--screenshot alone take the page before a live WebSocket or EventSource has had time to deliver
anything.

usage: headless_chromium.py URL TIMEOUT SCREENSHOT.png EXPRESSION CONDITION [WIDTHxHEIGHT]
Evaluates CONDITION every 100 ms until it is true or TIMEOUT seconds have passed (a slow,
busy machine only makes it take longer), then EXPRESSION.
prints {"value": <the expression's value>, "ready": <whether CONDITION held>, "waited": <seconds>,
"console": [...]} as JSON.
"""
import base64
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket


def main():
    url, timeout, screenshot, expression = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    condition = sys.argv[5]
    width, height = (sys.argv[6] if len(sys.argv) > 6 else "412x915").split("x")
    profile = tempfile.mkdtemp(prefix="zpub-chromium-")
    browser = subprocess.Popen(
        [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
         # /dev/shm is 64 MB in a container by default, which crashes Chromium's renderer: /tmp instead.
         "--disable-dev-shm-usage",
         "--no-first-run", "--disable-extensions", "--remote-debugging-port=0", "--remote-allow-origins=*",
         f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        # Extra flags from the test, e.g. --ignore-certificate-errors for a test certificate
        # (quoted as a shell would: a flag's value may hold spaces).
        + shlex.split(os.environ.get("ZPUB_CHROMIUM_FLAGS", "")) + ["about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.time() > deadline or browser.poll() is not None:
                sys.exit("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        next_id = [0]
        console = []

        def call(method, **params):
            next_id[0] += 1
            ws.send(json.dumps({"id": next_id[0], "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv())
                if message.get("method") == "Runtime.consoleAPICalled":
                    console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in message["params"]["args"]))
                if message.get("method") == "Runtime.exceptionThrown":
                    console.append("exception: " + json.dumps(message["params"]["exceptionDetails"].get("exception", {}).get("description", "")))
                if message.get("id") == next_id[0]:
                    return message.get("result", {})

        call("Runtime.enable")
        call("Page.enable")
        call("Page.navigate", url=url)
        started = time.monotonic()
        ready = False
        while True:
            result = call("Runtime.evaluate", expression=f"Boolean({condition})", returnByValue=True)
            ready = result.get("result", {}).get("value") is True
            if ready or time.monotonic() - started > timeout:
                break
            time.sleep(0.1)
        waited = round(time.monotonic() - started, 2)
        value = call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")
        shot = call("Page.captureScreenshot", format="png")
        os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
        with open(screenshot, "wb") as out:
            out.write(base64.b64decode(shot["data"]))
        print(json.dumps({"value": value, "ready": ready, "waited": waited, "console": console}))
        ws.close()
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
