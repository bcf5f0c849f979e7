"""The widgets where learners use them: a real JupyterLab, headless on 127.0.0.1, opened in Chromium with every
other host unreachable (as on a machine without internet). A lesson notebook is run with "Run All Cells" from the
menu, then the page must hold what the lesson shows (the loss plot's canvas), with no widget left blank.
Screenshots land in $NANOCHAT_ARTIFACTS (default /tmp/nanochat-artifacts): lab_04c_plots.png (the loss plots)."""
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
        # Run → Run All Cells, as the menu runs it (a click on the menu can land before the menu is wired up)
        browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells'); return true")  # not awaited
        deadline = time.time() + 20
        while time.time() < deadline and not started(): time.sleep(0.5)
        if started(): break
    else: pytest.fail(f"Run All Cells did not start {name}'s cells")
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

