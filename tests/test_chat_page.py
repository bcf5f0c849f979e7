"""The chat page (lesson 09c) in a real headless Chromium at a desktop size (1280x800) and a phone size (390x844,
mobile emulation), serving the smoke pipeline's trained model: the viewport tag, the sidebar beside the chat or
collapsed behind its button, the input pinned at the bottom, the conversation kept at the newest message, no
sideways scrolling and no word broken a letter per line, the reply length among the settings, the model's label.
Screenshots go to the test's tmp dir (their paths are printed) and, when $NANOCHAT_TEST_SCREENS names a folder,
are copied there too."""
import os, shutil, subprocess, sys, time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FIND_ALL = """
const [selector, text] = arguments;
function* all(root) { for (const el of root.querySelectorAll('*')) { yield el; if (el.shadowRoot) yield* all(el.shadowRoot); } }
return [...all(document)].filter(el => el.matches(selector) && (!text || el.textContent.includes(text)));"""

SET_SLIDER = """
const [title, value] = arguments;
for (const doc of Bokeh.documents) for (const m of doc._all_models.values()) if (m.title === title) { m.value = value; return true; }
return false;"""

SLIDER_TITLES = "return [...Bokeh.documents].flatMap(d => [...d._all_models.values()]).filter(m => m.type && m.type.endsWith('Slider')).map(m => m.title);"

# every chat message: [author, text, the text's lines (distinct line boxes), its box (left, right, top, bottom)]
MESSAGES = """
function* all(root) { for (const el of root.querySelectorAll('*')) { yield el; if (el.shadowRoot) yield* all(el.shadowRoot); } }
const text = el => [...(el.shadowRoot || el).children].filter(c => !["STYLE", "LINK"].includes(c.tagName)).map(c => c.textContent).join("").trim();
return [...all(document)].filter(el => el.classList && el.classList.contains("message")).map(el => {
  const walk = document.createTreeWalker(el.shadowRoot || el, NodeFilter.SHOW_TEXT), tops = new Set(), range = document.createRange();
  for (let t = walk.nextNode(); t; t = walk.nextNode()) {
    if (!t.textContent.trim() || ["STYLE", "SCRIPT"].includes(t.parentElement && t.parentElement.tagName)) continue;
    range.selectNodeContents(t);
    for (const r of range.getClientRects()) if (r.width > 0) tops.add(Math.round(r.top));
  }
  let right = el; while (right && !(right.classList && right.classList.contains("right"))) right = right.getRootNode().host;
  const name = right ? [...all(right.shadowRoot || right)].find(c => c.classList && c.classList.contains("name")) : null;
  const r = el.getBoundingClientRect();
  return [name ? text(name) : "", text(el), tops.size, [r.left, r.right, r.top, r.bottom]];
});"""

# the chat feed: the element that scrolls the messages (Panel's chat-feed-log): scrollTop, clientHeight, scrollHeight, its box
FEED = """
function* all(root) { for (const el of root.querySelectorAll('*')) { yield el; if (el.shadowRoot) yield* all(el.shadowRoot); } }
const el = [...all(document)].find(el => el.classList && el.classList.contains("chat-feed-log")); if (!el) return null;
const r = el.getBoundingClientRect();
return [el.scrollTop, el.clientHeight, el.scrollHeight, [r.left, r.right, r.top, r.bottom]];"""

BOX = "const r = arguments[0].getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom];"


def wait_until(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value: return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def served(smoke_run, tmp_path_factory):
    "`panel serve nanochat/chat_page.py --plugins nanochat.web` on the smoke pipeline's models (auto = the most trained)."
    import json, socket, urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(smoke_run.base_dir), "NANOCHAT_CHAT_SOURCE": "auto", "OMP_NUM_THREADS": "1"}
    log = tmp_path_factory.mktemp("chat-page") / "server.log"
    cmd = [str(Path(sys.executable).parent / "panel"), "serve", "nanochat/chat_page.py", "--plugins", "nanochat.web",
           "--port", str(port), "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    def health():
        if proc.poll() is not None: raise RuntimeError(f"panel serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try: return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
        except OSError: return None
    try:
        model = wait_until(health, 120, "the server")["model"]
        yield f"http://127.0.0.1:{port}/chat_page", model
    finally:
        proc.terminate(); proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def open_page(browser, url: str, width: int, height: int):
    "Load the page in a screen of width x height CSS pixels (a phone's touch screen below 500 px)."
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
    browser.get(url)
    wait_until(lambda: browser.execute_script(FIND_ALL, "textarea", None), 60, "the chat input")
    time.sleep(0.5)  # the template's own scripts (the sidebar) run once the document is ready


def send(browser, text: str):
    "Type `text` and press Enter; wait until its reply has stopped growing."
    from selenium.webdriver.common.keys import Keys
    before = len(browser.execute_script(MESSAGES))
    box = browser.execute_script(FIND_ALL, "textarea", None)[0]
    box.send_keys(text); box.send_keys(Keys.ENTER)
    wait_until(lambda: len(browser.execute_script(MESSAGES)) >= before + 2, 60, f"a reply to {text!r}")
    last, still = None, 0
    while still < 15:  # 1.5 s unchanged: the reply has ended
        now = browser.execute_script(MESSAGES)[-1][1]
        still = still + 1 if now == last else 0
        last = now
        time.sleep(0.1)


def screenshot(browser, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    browser.save_screenshot(str(path))
    if os.environ.get("NANOCHAT_TEST_SCREENS"):
        keep = Path(os.environ["NANOCHAT_TEST_SCREENS"]); keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, keep / path.name)
    print(f"screenshot: {path}")
    return path


def check_fits(browser, width: int):
    "The layout is as wide as the screen (the viewport tag) and nothing scrolls sideways."
    inner, scroll = browser.execute_script("return [innerWidth, document.scrollingElement.scrollWidth]")
    assert inner == width, f"the page is laid out {inner} px wide on a {width} px screen: no viewport tag?"
    assert scroll <= inner, f"the page scrolls sideways: {scroll} px of content in {inner} px"


def check_input_pinned(browser, width: int, height: int):
    box = browser.execute_script(BOX, browser.execute_script(FIND_ALL, "textarea", None)[0])
    assert 0 <= box[0] and box[1] <= width, f"the input {box} is not inside the {width} px screen"
    assert box[1] - box[0] >= width * 0.5, f"the input is only {box[1] - box[0]:.0f} px wide"
    assert height - 120 <= box[3] <= height, f"the input is not pinned at the bottom: its bottom at {box[3]:.0f} of {height} px"


def check_messages(browser, width: int, label: str):
    "Each message readable (a short line on few lines, a box of a decent width) and signed; the newest in view."
    messages = browser.execute_script(MESSAGES)
    for author, text, lines, (left, right, _, _) in messages:
        assert right <= width + 1, f"a message sticks out of the screen ({right:.0f} px > {width}): {text[:40]!r}"
        words = max(len(text.split()), 1)
        assert lines <= words, f"{text[:60]!r} ({words} words) takes {lines} lines: words broken a letter per line"
    assert any(author == label for author, *_ in messages), f"no reply signed {label!r}: {[m[0] for m in messages]}"
    def at_bottom():  # the page keeps the feed at its end within 0.2 s of each growth: give it a moment, then judge
        top, client, total, box = browser.execute_script(FEED)
        return (top, client, total, box) if top + client >= total - 40 else None
    try: top, client, total, (_, _, feed_top, feed_bottom) = wait_until(at_bottom, 5, "the feed at its newest message")
    except Exception:
        top, client, total, _ = browser.execute_script(FEED)
        raise AssertionError(f"the conversation is not at its newest message: scrolled {top}+{client} of {total} px")
    last_top, last_bottom = messages[-1][3][2:]
    assert feed_top - 1 <= last_top and last_bottom <= feed_bottom + 1, "the newest message is not in view"
    return total > client  # the conversation is longer than the window


def sidebar_box(browser):
    return browser.execute_script("const s = document.getElementById('sidebar'); if (!s) return null;"
                                  "const r = s.getBoundingClientRect(); return [r.left, r.right, r.width, s.classList.contains('show')];")


def test_desktop(served, browser, tmp_path):
    url, model = served
    from nanochat.chat_page import model_label
    label = model_label(model)[0]
    assert label.startswith("nanochat · ") and " step " in label, label
    open_page(browser, url, 1280, 800)
    assert browser.title == label
    header = browser.execute_script("return document.querySelector('.navbar').innerText")
    assert label in header, f"the header does not name the model: {header!r}"
    left, right, w, shown = sidebar_box(browser)
    assert shown and w >= 200, "on a desktop the settings sidebar is open"
    assert browser.execute_script(SET_SLIDER, "Temperature", 0.0)
    time.sleep(0.5)
    for text in ("Hi", "What is the capital of France?", "Tell me about the sea"): send(browser, text)
    check_fits(browser, 1280)
    check_input_pinned(browser, 1280, 800)
    check_messages(browser, 1280, label)
    textarea = browser.execute_script(BOX, browser.execute_script(FIND_ALL, "textarea", None)[0])
    assert textarea[0] >= right - 1, "the chat sits beside the sidebar, not under it"
    screenshot(browser, tmp_path, "chat-desktop-1280x800")
    titles = browser.execute_script(SLIDER_TITLES)
    assert {"Temperature", "Top-k"} <= set(titles) and any(t.startswith("Reply length") for t in titles), titles


def test_phone(served, browser, tmp_path):
    url, model = served
    from nanochat.chat_page import model_label
    label = model_label(model)[0]
    open_page(browser, url, 390, 844)
    check_fits(browser, 390)
    left, right, w, shown = sidebar_box(browser)
    assert not shown and right <= 1, f"on a phone the sidebar starts collapsed: {left, right, w, shown}"
    check_input_pinned(browser, 390, 844)
    assert browser.execute_script(SET_SLIDER, "Temperature", 0.0)
    time.sleep(0.5)
    for i, text in enumerate(("Hello from a phone", "What is the capital of France?", "Why is the sky blue?", "Tell me a story",
                              "Thanks!", "One more question about the moon")):
        send(browser, text)
        longer = check_messages(browser, 390, label)
    assert longer, "six exchanges should fill a phone's screen (then the feed scrolls)"
    check_fits(browser, 390)
    check_input_pinned(browser, 390, 844)
    screenshot(browser, tmp_path, "chat-phone-390x844")
    browser.find_element("id", "sidebar-toggle").click()
    wait_until(lambda: sidebar_box(browser)[3] and sidebar_box(browser)[2] >= 200 and sidebar_box(browser)[0] >= -1, 10, "the sidebar to open")
    time.sleep(0.6)  # the opening animation
    slider = browser.execute_script(FIND_ALL, ".bk-slider-title", "Temperature")
    assert slider and browser.execute_script(BOX, slider[0])[1] <= 390, "the settings are in the opened sidebar"
    check_fits(browser, 390)
    screenshot(browser, tmp_path, "chat-phone-390x844-settings")
    browser.find_element("id", "sidebar-toggle").click()
    wait_until(lambda: not sidebar_box(browser)[3], 10, "the sidebar to close")


def test_reply_length_setting_bounds_the_reply(served, browser, smoke_base):
    "Reply length 3: the page shows exactly the first 3 greedy tokens' text, as the service computes it here."
    url, model = served
    from nanochat.checkpoint import load_model
    from nanochat.engine import Engine
    from nanochat.serving import ChatService
    stage = model.split("-")[1]
    net, tok, _ = load_model(stage)
    expected = ChatService([Engine(net.eval(), tok)]).complete([{"role": "user", "content": "Tell me about the sea"}],
                                                               max_tokens=3, temperature=0).text
    open_page(browser, url, 1280, 800)
    title = next(t for t in browser.execute_script(SLIDER_TITLES) if t.startswith("Reply length"))
    assert browser.execute_script(SET_SLIDER, "Temperature", 0.0) and browser.execute_script(SET_SLIDER, title, 3)
    time.sleep(0.5)
    send(browser, "Tell me about the sea")
    shown = browser.execute_script(MESSAGES)[-1][1]
    assert shown == expected.strip(), f"with a reply length of 3 the page shows {shown!r}, the model's 3 greedy tokens are {expected!r}"
