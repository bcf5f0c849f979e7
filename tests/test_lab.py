"""The widgets where learners use them: a real JupyterLab, headless on 127.0.0.1, opened in Chromium with every
other host unreachable (as on a machine without internet). A lesson notebook is run with "Run All Cells" from the
menu, then the page must hold what the lesson shows (the loss plot's canvas, the chat that streams a typed message's
reply), with no widget left blank. Screenshots land in $NANOCHAT_ARTIFACTS (default /tmp/nanochat-artifacts):
lab_04c_plots.png (the loss plots), lab_09b_web.png (the chat widget with a typed message and its streamed reply)."""
import json, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("NANOCHAT_ARTIFACTS", "/tmp/nanochat-artifacts"))
NOTEBOOKS = ("04c_plots.ipynb", "09b_web.ipynb")

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


def start_session(url: str, name: str) -> str:
    """A session for notebook `name` with a python3 kernel, made through the server's API: the page then reuses it and
    starts no kernel of its own. (Left to the page, a kernel start that is slow under load ends in a "Select Kernel"
    dialog, and choosing a kernel there replaces the running one: cells that Run All had sent it are never run.)"""
    body = json.dumps({"path": name, "name": name, "type": "notebook", "kernel": {"name": "python3"}}).encode()
    request = urllib.request.Request(url + "/api/sessions", data=body, method="POST", headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=120).read())["kernel"]["id"]


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
           f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--LabApp.expose_app_in_browser=True", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    labconfig = home / "config" / "labconfig"  # no "get notified about Jupyter news?" toast over the screenshots
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    tracker = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"  # every cell in the page, always:
    tracker.mkdir(parents=True)  # windowed rendering leaves cells out of the viewport (a widget's output) out of the DOM
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: urllib.request.urlopen(url + "/api/status", timeout=2).status == 200, 90, "JupyterLab to start")
        kernels = {}
        for name in NOTEBOOKS:  # each notebook's kernel, started now (while Chromium starts) by the server
            shutil.copy(REPO / "nbs" / name, root / name)
            kernels[name] = start_session(url, name)
        yield url, kernels
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


# the open notebook `arguments[0]`'s kernel: [id, status, connection status], or null
KERNEL = """
const panel = [...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === arguments[0]);
const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
return kernel ? [kernel.id, kernel.status, kernel.connectionStatus] : null;"""

# Run → Run All Cells on the open notebook `arguments[0]`; window.__runAll gets the command's result when every cell has run
RUN_ALL = """
const app = window.jupyterapp, panel = [...app.shell.widgets('main')].find(w => w.context && w.context.path === arguments[0]);
app.shell.activateById(panel.id);
window.__runAll = null;
app.commands.execute('notebook:run-all-cells').then(ok => window.__runAll = {ok}, e => window.__runAll = {error: String(e)});"""


def run_all_cells(browser, lab, name: str, seconds: float = 240):
    "Open `name` in JupyterLab on the kernel the server started for it, choose Run → Run All Cells, wait until every code cell has run."
    from selenium.webdriver.common.by import By
    url, kernels = lab
    browser.get(f"{url}/lab/tree/{name}")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 120, f"{name} to open")
    def kernel():  # the page's kernel, which must stay the one started for it: a replaced kernel drops the cells sent to it
        state = browser.execute_script(KERNEL, name)
        if state and state[0] != kernels[name]: pytest.fail(f"JupyterLab replaced {name}'s kernel {kernels[name]} by {state[0]}")
        return state
    wait_until(lambda: (state := kernel()) and state[1:] == ["idle", "connected"], 120, f"{name}'s kernel, idle and connected")
    def ran():  # the Run All command's result, when it has one: {ok} (true: every cell ran) or {error}
        kernel(); return browser.execute_script("return window.__runAll")
    try:
        for attempt in range(3):  # a command run while the page still registers its commands is refused: again
            browser.execute_script(RUN_ALL, name)
            result = wait_until(ran, seconds, f"every cell of {name} to run", every=1)
            if "not registered" not in result.get("error", ""): break
            time.sleep(1)
    finally: screenshot(browser, f"lab_{Path(name).stem}_run.png")
    errors = browser.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr'] pre, .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    tracebacks = [e.text for e in errors if "Traceback" in e.text or "Error" in e.text]
    assert not tracebacks, f"{name} raised in JupyterLab:\n" + "\n".join(tracebacks)[:3000]
    assert result == {"ok": True}, f"Run All Cells of {name} ended with {result}"


def test_loss_plot_renders_in_jupyterlab_offline(lab, browser):
    run_all_cells(browser, lab, "04c_plots.ipynb")
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


# in the page: the text of the message after the one holding `arguments[0]` (the reply), each change kept. Read after
# every DOM mutation (in the document and every shadow root, watched as they appear), not on a timer: a fast reply's
# chunks can all be applied within one timer tick, and the reply would look as if it came whole
RECORD_REPLY = MESSAGES_TEXT.replace("return [", "const texts = () => [") + """
const typed = arguments[0];
window.__replyStates = []; window.__replyChanged = Date.now();
const record = () => {
  const t = texts(), i = t.findIndex(text => text.includes(typed)), s = window.__replyStates;
  const reply = i >= 0 && i + 1 < t.length ? t[i + 1].trim() : "";
  if (reply && reply !== s[s.length - 1]) { s.push(reply); window.__replyChanged = Date.now(); }
};
const watched = new WeakSet(), options = {subtree: true, childList: true, characterData: true, attributes: true};
const watch = () => { for (const root of [document, ...[...all(document)].map(el => el.shadowRoot).filter(Boolean)])
  if (!watched.has(root)) { watched.add(root); new MutationObserver(record).observe(root, options); } };
setInterval(() => { watch(); record(); }, 5);
watch();"""


def test_chat_widget_renders_and_streams_in_jupyterlab_offline(lab, browser):
    "09b's ChatApp cell shows the chat itself (not `<ChatApp at 0x…>`), its awaited demo runs live, and a typed message streams a reply."
    from selenium.webdriver.common.keys import Keys
    run_all_cells(browser, lab, "09b_web.ipynb", seconds=360)  # it starts an API server and sends it requests too
    text = browser.execute_script(PAGE_TEXT)
    assert "ChatApp at 0x" not in text and "ChatApp object at" not in text, "the widget cell shows the object's repr, not the widget"
    assert "library is missing" not in text and "Unable to run Panel code" not in text, "Panel's JavaScript did not load"
    # the input is disabled while a reply streams: the page may still be applying the demo's last changes
    box = wait_until(lambda: browser.execute_script(FIND, "textarea:not([disabled])"), 60, "the chat input, enabled, in the widget's output")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    typed = "Hello from JupyterLab"
    browser.execute_script(RECORD_REPLY, typed)
    box.send_keys(typed)
    box.send_keys(Keys.ENTER)
    def finished():  # the reply has stopped changing for a second
        states = browser.execute_script("return window.__replyStates")
        return states and time.time() - browser.execute_script("return window.__replyChanged") / 1000 > 1 and states
    path = ARTIFACTS / "lab_09b_web.png"
    try:
        wait_until(lambda: any(typed in t for t in browser.execute_script(MESSAGES_TEXT)), 60, "the typed message in the chat")
        states = wait_until(finished, 120, "a reply after the typed message", every=0.5)
    finally: screenshot(browser, path.name)
    print(f"screenshot: {path}; the reply seen in {len(states)} states")
    assert len(states) >= 2 and len(states[0]) < len(states[-1]), f"the reply did not stream (grow): {states}"
