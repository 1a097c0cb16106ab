"""The chat page in a real headless Chromium (selenium) against a real `gpt serve --api-key` process."""

import json
import shutil
import time
import urllib.error
import urllib.request

import pytest

from .conftest import TINY, run_gpt, start_server, stop_server

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

KEY = "web-key"
QUESTION = "What is a class?"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")

# Records every fetch the page makes, so the test can see the request went out with `stream: true`.
FETCH_SPY = """
window.__requests = [];
const original = window.fetch;
window.fetch = (url, init = {}) => {
  window.__requests.push({url: String(url), body: init.body || null, auth: (init.headers || {}).Authorization || null});
  return original(url, init);
};
"""
# Records the assistant bubble's text length at every DOM change: a streamed answer grows in steps.
GROWTH_SPY = """
window.__lengths = [];
new MutationObserver(() => {
  const bubbles = document.querySelectorAll('.message.assistant');
  if (bubbles.length) window.__lengths.push(bubbles[bubbles.length - 1].textContent.length);
}).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
"""
# Holds the answer's stream once the page shows a visible word, until the request is aborted: a slow network, so
# that pressing Stop never races the end of the answer, however fast the machine generates.
HOLD_SPY = """
const unheld = window.fetch;
window.fetch = async (url, init = {}) => {
  const response = await unheld(url, init);
  if (!String(url).endsWith("/chat/completions") || !response.ok) return response;
  const reader = response.body.getReader();
  const aborted = new Promise((_, reject) => init.signal.addEventListener(
    "abort", () => reject(new DOMException("the user pressed Stop", "AbortError"))));
  const shown = () => document.querySelector("#messages .assistant.streaming")?.textContent.trim();
  const body = new ReadableStream({
    async pull(controller) {
      if (shown()) await aborted;
      const { value, done } = await reader.read();
      if (done) controller.close(); else controller.enqueue(value);
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status: response.status, headers: response.headers });
};
"""



@pytest.fixture(scope="module")
def server(corpus_file, tmp_path_factory):
    run = tmp_path_factory.mktemp("web") / "plants"
    run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(run), "--train.max_iters", "30",
            "--data.qa", "off", check=True)  # a base run: its answers run long enough to be stopped
    proc, base = start_server(run, "--api-key", KEY)
    yield base
    stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver are not on PATH (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,640"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def wait(driver, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def by_id(driver, element_id: str):
    return driver.find_element("id", element_id)


def fill(driver, element_id: str, text: str) -> None:
    """Type into a field the way a person does; the TAB fires `change`, which the page listens for."""
    from selenium.webdriver.common.keys import Keys
    field = by_id(driver, element_id)
    field.clear()
    field.send_keys(text, Keys.TAB)


def bubbles(driver, kind: str = "message") -> list[str]:
    return [b.text for b in driver.find_elements("css selector", f"#messages .{kind}")]


def ask(driver, text: str) -> None:
    """Send one message and wait until the page is no longer streaming."""
    fill(driver, "prompt", text)
    by_id(driver, "send").click()
    wait(driver, lambda d: d.execute_script("return document.body.dataset.busy") == "false")


def chat_reference(base: str, body: dict) -> str:
    """The same request without streaming, straight to the server: what the page must have shown."""
    request = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps({**body, "stream": False}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


def test_page_loads_without_the_key(server):
    for path in ("/", "/chat"):
        with urllib.request.urlopen(server + path, timeout=10) as response:
            assert response.status == 200 and response.headers["content-type"].startswith("text/html")
            assert b'id="send"' in response.read()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server + "/v1/models", timeout=10)
    assert err.value.code == 401


def answer_text(driver) -> str:
    return driver.find_element("css selector", "#messages .assistant").get_attribute("textContent")


def stored(driver) -> list[dict] | None:
    return json.loads(driver.execute_script("return localStorage.getItem('gpt-chat.messages')") or "null")


def test_chat_page(server, browser, tmp_path):
    browser.get(server + "/")
    wait(browser, lambda d: "API key" in by_id(d, "notice").text)  # /v1/models answered 401
    fill(browser, "api-key", KEY)
    wait(browser, lambda d: by_id(d, "model").text == "plants")
    assert by_id(browser, "notice").text == ""
    fill(browser, "seed", "7")  # a fixed seed: the streamed answer can be checked against the server's own
    fill(browser, "max-tokens", "24")
    browser.execute_script(FETCH_SPY + GROWTH_SPY)

    ask(browser, QUESTION)
    answer = browser.find_element("css selector", "#messages .assistant")
    requests = browser.execute_script("return window.__requests")
    assert [r["url"] for r in requests] == ["/v1/chat/completions"] and requests[0]["auth"] == f"Bearer {KEY}"
    body = json.loads(requests[0]["body"])
    assert body == {"model": "plants", "messages": [{"role": "user", "content": QUESTION}], "stream": True,
                    "temperature": 0.8, "top_p": 1, "max_tokens": 24, "seed": 7}
    shown = answer.get_attribute("textContent")
    assert shown.strip() and shown == chat_reference(server, body)
    assert int(answer.get_attribute("data-chunks")) > 2
    assert answer.get_attribute("data-finish-reason") in ("stop", "length")
    lengths = browser.execute_script("return window.__lengths")
    assert len(set(lengths)) > 2 and lengths == sorted(lengths), lengths  # it grew piece by piece
    browser.save_screenshot(str(tmp_path / "chat-page.png"))

    browser.refresh()  # the conversation, the key and the settings come back from localStorage
    wait(browser, lambda d: by_id(d, "model").text == "plants")
    assert bubbles(browser, "user") == [QUESTION] and answer_text(browser) == shown
    assert stored(browser) == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": shown}]
    assert by_id(browser, "seed").get_attribute("value") == "7"


def test_errors_stop_and_new_chat(server, browser):
    browser.get(server + "/chat")
    fill(browser, "api-key", KEY)
    wait(browser, lambda d: by_id(d, "model").text == "plants")
    by_id(browser, "new-chat").click()
    assert bubbles(browser) == [] and stored(browser) is None
    too_long = "word " * 40
    ask(browser, too_long)  # more than the tiny model's 32-token context: the server's 400, shown inline
    assert "context is 32 tokens" in bubbles(browser, "error")[-1]
    assert by_id(browser, "prompt").get_attribute("value") == too_long.strip() and stored(browser) == []

    fill(browser, "seed", "7")
    fill(browser, "max-tokens", "4096")  # the server is still generating when the page stops reading
    browser.execute_script(HOLD_SPY)
    fill(browser, "prompt", "Hi")
    by_id(browser, "send").click()
    wait(browser, lambda d: answer_text(d).strip())  # stopped before a visible word, the empty answer is dropped
    by_id(browser, "stop").click()
    wait(browser, lambda d: d.execute_script("return document.body.dataset.busy") == "false")
    assert browser.find_element("css selector", ".assistant").get_attribute("data-finish-reason") == "stopped"
    assert [m["role"] for m in stored(browser)] == ["user", "assistant"]
    start = time.time()  # the aborted generation gave the model back: the next request need not wait for it
    chat_reference(server, {"model": "plants", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
    assert time.time() - start < 3


def test_an_answer_quoted_from_the_runs_text_shows_its_source(browser, tmp_path):
    from .test_serve import NOTES
    notes, run = tmp_path / "glossary.txt", tmp_path / "run"
    notes.write_text(NOTES)
    run_gpt("train", *TINY, "--input", str(notes), "--out", str(run), "--model.block_size", "128",
            "--train.max_iters", "20", "--train.sample_tokens", "0", check=True)
    proc, base = start_server(run)
    try:
        browser.get(base + "/")
        wait(browser, lambda d: by_id(d, "model").text == "run")
        ask(browser, "What is Ivy?")
        (source,) = bubbles(browser, "sources")
        line = int(source.removeprefix(f"source: {notes}:"))
        assert answer_text(browser).strip() in NOTES.splitlines()[line - 1]  # the answer, without its source
        assert stored(browser)[-1] == {"role": "assistant", "content": answer_text(browser)}
    finally:
        stop_server(proc)
