"""The widgets where learners use them: a real JupyterLab, headless on 127.0.0.1, opened in Chromium with every
other host unreachable (as on a machine without internet). A lesson notebook is run with "Run All Cells" from the
menu, then the page must hold what the lesson shows (the loss plot's canvas), with no widget left blank.
Screenshots land in $NANOCHAT_ARTIFACTS (default /tmp/nanochat-artifacts): lab_04c_plots.png (the loss plots), lab_09b_web.png
(the chat widget with a typed message and its streamed reply)."""
import json, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("NANOCHAT_ARTIFACTS", "/tmp/nanochat-artifacts"))

# every element, looking inside shadow roots too (Bokeh 3 and Panel render into them)
ALL = "function* all(root) { for (const el of root.querySelectorAll('*')) { yield el; if (el.shadowRoot) yield* all(el.shadowRoot); } }"
COUNT = ALL + "\nreturn [...all(document)].filter(el => el.matches(arguments[0])).length;"
PAGE_TEXT = ALL + "\nreturn [...all(document)].map(el => el.shadowRoot ? el.shadowRoot.textContent : '').join(' ') + document.body.innerText;"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def wait_until(check, seconds: float, what: str, every: float = 0.25):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if value := check(): return value
        except Exception: pass
        time.sleep(every)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "JupyterLab on a free port, its root a scratch folder (so autosave never touches the repo's notebooks)."
    root = tmp_path_factory.mktemp("lab")
    port, home = free_port(), root / "home"
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(root / "base"), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "IPYTHONDIR": str(home / "ipython"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--allow-root", "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
           f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: urllib.request.urlopen(url + "/api/status", timeout=2).status == 200, 90, "JupyterLab to start")
        yield root, url
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill()


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000",
                # no network but this machine: a CDN script would fail to load, as it does offline
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def screenshot(browser, name: str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / name))


def run_all_cells(browser, url: str, name: str, seconds: float = 240):
    "Open `name` in JupyterLab, choose Run → Run All Cells, wait until every code cell has run."
    from selenium.webdriver.common.by import By
    browser.get(f"{url}/lab/tree/{name}")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 120, f"{name} to open")
    wait_until(lambda: "Idle" in browser.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Component, #jp-main-statusbar").text
               or browser.find_elements(By.CSS_SELECTOR, ".jp-Toolbar-kernelStatus[data-status='idle'], [data-status='idle']"),
               120, "the kernel to start")
    def started():  # a cell is queued or has run
        return any(p.text.strip() not in ("", "[ ]:") for p in browser.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt"))
    for attempt in range(3):  # a click landing while the page still wires up its commands is lost: try again
        for dialog in browser.find_elements(By.CSS_SELECTOR, ".jp-Dialog"):  # e.g. "Select Kernel": take its default
            print("dialog:", dialog.text.replace("\n", " | "))
            dialog.find_element(By.CSS_SELECTOR, ".jp-mod-accept").click(); time.sleep(1)
        browser.find_element(By.XPATH, "//li[contains(@class,'lm-MenuBar-item')][.//div[text()='Run']]").click()
        wait_until(lambda: browser.find_element(By.XPATH, "//li[contains(@class,'lm-Menu-item')][.//div[text()='Run All Cells']]"),
                   30, "the Run menu's Run All Cells").click()
        deadline = time.time() + 20
        while time.time() < deadline and not started(): time.sleep(0.5)
        if started(): break
    def done():
        prompts = [p.text for p in browser.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
        return prompts and all(p.startswith("[") and p[1:-2].strip().isdigit() for p in prompts if p.strip())
    try: wait_until(done, seconds, f"every cell of {name} to run", every=1)
    finally: screenshot(browser, f"lab_{Path(name).stem}_run.png")
    errors = browser.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr'] pre, .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    tracebacks = [e.text for e in errors if "Traceback" in e.text or "Error" in e.text]
    assert not tracebacks, f"{name} raised in JupyterLab:\n" + "\n".join(tracebacks)[:3000]


def test_loss_plot_renders_in_jupyterlab_offline(lab, browser):
    root, url = lab
    shutil.copy(REPO / "nbs" / "04c_plots.ipynb", root / "04c_plots.ipynb")
    run_all_cells(browser, url, "04c_plots.ipynb")
    # Bokeh draws each figure on a canvas; a blank widget (its JavaScript missing) has none
    canvases = wait_until(lambda: browser.execute_script(COUNT, "canvas"), 60, "the loss plots' canvases")
    screenshot(browser, "lab_04c_plots.png")
    text = browser.execute_script(PAGE_TEXT)
    assert "library is missing" not in text and "Unable to run Panel code" not in text, "Panel's JavaScript did not load"
    assert canvases >= 4, f"expected the live view's and the replay's two figures each, found {canvases} canvases"


FIND = ALL + """
const [selector] = arguments;
return [...all(document)].filter(el => el.matches(selector)).pop() || null;"""

MESSAGES_TEXT = ALL + """
return [...all(document)].filter(el => el.classList && el.classList.contains("message"))
  .map(el => [...(el.shadowRoot || el).children].filter(c => !["STYLE", "LINK"].includes(c.tagName)).map(c => c.textContent).join(""));"""


RECORD_REPLY = MESSAGES_TEXT.replace("return [", "const texts = () => [") + """
const before = arguments[0];
window.__replyStates = []; window.__replyChanged = Date.now();
setInterval(() => {
  const t = texts(), s = window.__replyStates;
  const reply = t.length >= before + 2 ? t[t.length - 1].trim() : "";
  if (reply && reply !== s[s.length - 1]) { s.push(reply); window.__replyChanged = Date.now(); }
}, 5);"""


def test_chat_widget_renders_and_streams_in_jupyterlab_offline(lab, browser):
    "09b's ChatApp cell shows the chat itself (not `<ChatApp at 0x…>`), its awaited demo runs live, and a typed message streams a reply."
    from selenium.webdriver.common.keys import Keys
    root, url = lab
    shutil.copy(REPO / "nbs" / "09b_web.ipynb", root / "09b_web.ipynb")
    run_all_cells(browser, url, "09b_web.ipynb", seconds=360)  # it starts an API server and sends it requests too
    text = browser.execute_script(PAGE_TEXT)
    assert "ChatApp at 0x" not in text and "ChatApp object at" not in text, "the widget cell shows the object's repr, not the widget"
    assert "library is missing" not in text and "Unable to run Panel code" not in text, "Panel's JavaScript did not load"
    box = wait_until(lambda: browser.execute_script(FIND, "textarea"), 60, "the chat input in the widget's output")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    before = len(browser.execute_script(MESSAGES_TEXT))  # the demo ended with a new conversation: none
    browser.execute_script(RECORD_REPLY, before)  # in the page: the reply's text every 5 ms, each change kept
    box.send_keys("Hello from JupyterLab")
    box.send_keys(Keys.ENTER)
    def finished():  # the reply has stopped changing for a second
        states = browser.execute_script("return window.__replyStates")
        return states and time.time() - browser.execute_script("return window.__replyChanged") / 1000 > 1 and states
    states = wait_until(finished, 120, "a reply in the widget", every=0.5)
    path = ARTIFACTS / "lab_09b_web.png"
    screenshot(browser, path.name)
    print(f"screenshot: {path}; the reply seen in {len(states)} states")
    texts = browser.execute_script(MESSAGES_TEXT)
    assert any("Hello from JupyterLab" in t for t in texts), f"the typed message is not in the chat: {texts}"
    assert len(states) >= 2 and len(states[0]) < len(states[-1]), f"the reply did not stream (grow): {states}"
