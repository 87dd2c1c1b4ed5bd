"""``ponder view`` in a real headless Chromium: navigation, filters, votes, trees, compare, live rows, hostile records.

The records are real (the CLI with the embedded model, see ``conftest.py``) except the hostile folders, which
put markup, attribute breakers, ``javascript:`` URLs and template syntax into every text field and add a
malformed middle line and a torn last line. Every page visited is screenshotted and must not have run an
injected script (``window.__pwned``). Skipped only when Chromium or chromedriver is not installed.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from ponder.envs.miniwob.browser import find_browser

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.skipif(find_browser() is None, reason="chromium / chromedriver not installed "
                                                                "(apt-get install chromium chromium-driver)")]
Records = Any  # conftest.Records (a conftest is not importable by name in importlib mode)
Hostile = Any  # conftest.Hostile
Visit = Callable[..., Any]

CHANGES = {"fixed", "broken", "same_success", "same_failure", "only_a", "only_b"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: JS: elements an escaping bug would create (event handlers, foreign scripts, javascript: links, frames).
INJECTED_JS = """
const bad = [];
const cut = e => e.outerHTML.slice(0, 160);
document.querySelectorAll('img[src="x"], svg[onload], [onerror], [onload], [onmouseover], base, iframe, object, embed')
  .forEach(e => bad.push(cut(e)));
document.querySelectorAll('script').forEach(s => {
  if (!s.src || new URL(s.src).origin !== location.origin) bad.push(cut(s)); });
document.querySelectorAll('a').forEach(a => {
  const h = a.getAttribute('href') || a.getAttribute('xlink:href') || '';
  if (/^\\s*javascript:/i.test(h)) bad.push(cut(a)); });
return bad;
"""
LINKS_JS = """return Array.from(document.querySelectorAll('a')).map(a => {
  const h = (a.href && a.href.baseVal !== undefined) ? a.href.baseVal : a.getAttribute('href');
  return h ? new URL(h, location.href).href : null; }).filter(Boolean);"""


def css(driver: Any, selector: str) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def wait_for(driver: Any, selector: str, timeout: float = 15) -> list[Any]:
    """The elements matching ``selector`` once there is at least one (fails with the page's text otherwise)."""
    try:
        return WebDriverWait(driver, timeout).until(lambda d: css(d, selector))
    except Exception:  # noqa: BLE001 - a timeout: say what the page showed instead
        body = driver.find_element(By.TAG_NAME, "body").text[:1500]
        pytest.fail(f"no {selector!r} on {driver.current_url}; the page shows:\n{body}")


def body_text(driver: Any) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def fetch(url: str, host: str | None = None) -> tuple[int, dict[str, str], str]:
    """GET ``url``: status, headers (lower-case names), body; an error status is returned, not raised."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read().decode(errors="replace")


def episode_ids(driver: Any) -> list[str]:
    return [a.text.strip() for a in css(driver, "table#episodes tr.episode a.episode-link")]


def tokens(record: dict[str, Any]) -> int:
    usage = record.get("usage") or {}
    return int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))


def click_and_load(driver: Any, element: Any, timeout: float = 15) -> None:
    """Click a link or button that loads a new page and wait until the old page is gone."""
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, timeout).until(expected_conditions.staleness_of(old))
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return document.readyState") == "complete")


def href(driver: Any, element: Any) -> str:
    """The absolute URL of a link (HTML or SVG ``<a>``)."""
    return driver.execute_script("return new URL(arguments[0].getAttribute('href'), location.href).href", element)


def open_trajectory(driver: Any) -> None:
    """From an episode page, follow the link to its (first) trajectory's page; a trajectory page stays open."""
    wait_for(driver, "ol#steps, section.trajectory, dl#episode")
    if css(driver, "dl#episode") or not css(driver, "ol#steps li.step"):
        links = css(driver, "section.trajectory a[href*='/trajectory/']")
        assert links, f"{driver.current_url}: an episode page with no link to its trajectory page"
        click_and_load(driver, links[0])
        wait_for(driver, "ol#steps li.step")


def test_index_lists_every_run_with_its_summary(records: Records, visit: Visit) -> None:
    driver = visit("/")
    rows = wait_for(driver, "table#runs tr.run")
    names = {a.text.strip(): a for a in css(driver, "table#runs tr.run a.run-link")}
    expected = {("." if p == records.root else str(p.relative_to(records.root))) for p in records.runs.values()}
    assert set(names) == expected and len(rows) == len(expected)
    by_name = {row.find_element(By.CSS_SELECTOR, "a.run-link").text.strip(): row for row in rows}
    for name in ("eval-a", "eval-b"):
        text = by_name[name].text
        assert "gsm8k" in text and "eval" in text and "embedded" in text, text
        assert " 3 " in f" {text} ", text  # three episodes
    assert "runs" in by_name["plain"].text and " 1 " in f" {by_name['plain'].text} "
    for name, path in records.runs.items():
        href = names["." if path == records.root else str(path.relative_to(records.root))].get_attribute("href")
        assert urlparse(href).path == f"/run/{records.key(name)}"
    click_and_load(driver, names["eval-a"])
    wait_for(driver, "dl#summary")
    assert urlparse(driver.current_url).path == f"/run/{records.key('eval-a')}"
    visit()


def test_click_run_to_trajectory_to_a_steps_prompt(records: Records, visit: Visit) -> None:
    traj = records.lines("plain", "trajectories.jsonl")[0]
    driver = visit("/")
    click_and_load(driver, next(a for a in css(driver, "a.run-link") if a.text.strip() == "plain"))
    assert "What is 17 * 23 - 4?" in wait_for(driver, "table#episodes tr.episode")[0].text
    visit()
    click_and_load(driver, css(driver, "a.episode-link")[0])
    open_trajectory(driver)
    visit()
    steps = css(driver, "ol#steps li.step")
    assert len(steps) == len(traj["steps"]), body_text(driver)[:1000]
    for item, step in zip(steps, traj["steps"], strict=True):
        for cls, key in (("thought", "thought"), ("action", "action"), ("observation", "observation")):
            value = " ".join((step.get(key) or "").split())[:40]
            if value:
                shown = " ".join(item.find_element(By.CSS_SELECTOR, f".{cls}").text.split())
                assert value in shown, (cls, value, shown)
        shown = item.find_element(By.CSS_SELECTOR, ".tokens").text.replace(",", "")
        total = step["prompt_tokens"] + step["completion_tokens"]
        assert str(step["completion_tokens"]) in shown or str(total) in shown, shown
    assert css(driver, "span#trace-id")
    prompt_links = css(driver, "a.prompt-link")
    assert len(prompt_links) == len(steps)
    first, last = prompt_links[0].get_attribute("href"), prompt_links[-1].get_attribute("href")
    # a `ponder run` folder's row opens its trajectory by line (ids may repeat), an eval's by trajectory id
    assert urlparse(last).path.endswith((f"/trajectory/{traj['id']}/prompt/{len(steps) - 1}",
                                         f"/episode/1/prompt/{len(steps) - 1}")), last
    click_and_load(driver, prompt_links[-1])
    last_msgs = wait_for(driver, "ol#prompt li.message")
    assert any("What is 17 * 23 - 4?" in m.text for m in last_msgs)
    visit()
    first_count = len(wait_for(visit(first), "ol#prompt li.message"))
    before = sum(2 if s.get("observation") is not None else 1 for s in traj["steps"][:-1])
    assert len(last_msgs) == first_count + before, (len(last_msgs), first_count, before)


def test_eval_episode_page_shows_its_trajectories(records: Records, visit: Visit) -> None:
    result = records.lines("eval-a", "results.jsonl")[0]
    trajs = {t["id"]: t for t in records.lines("eval-a", "trajectories.jsonl")}
    driver = visit(f"/run/{records.key('eval-a')}")
    link = next(a for a in wait_for(driver, "a.episode-link") if a.text.strip() == result["episode_id"])
    click_and_load(driver, link)
    facts = wait_for(driver, "dl#episode")[0].text
    assert result["episode_id"] in body_text(driver) and result["status"] in facts
    assert " ".join(result["task"].split())[:40] in " ".join(body_text(driver).split())
    sections = css(driver, "section.trajectory")
    assert len(sections) == len(result["trajectory_ids"]) >= 1
    first = trajs[result["trajectory_ids"][0]]
    visit()
    steps_here = sections[0].find_elements(By.CSS_SELECTOR, "li.step")
    if steps_here:
        assert len(steps_here) == len(first["steps"])
    else:
        open_trajectory(driver)
        assert len(css(driver, "ol#steps li.step")) == len(first["steps"])
        assert first["id"] in driver.current_url
        visit()


def test_filters_and_sorting_change_the_rows(records: Records, visit: Visit) -> None:
    results = records.lines("eval-a", "results.jsonl")
    driver = visit(f"/run/{records.key('eval-a')}")
    assert episode_ids(driver) == [r["episode_id"] for r in results]
    status, n = Counter(r["status"] for r in results).most_common()[-1]  # the rarest status
    Select(css(driver, "form#filters select[name=status]")[0]).select_by_value(status)
    click_and_load(driver, css(driver, "form#filters button[type=submit]")[0])
    assert parse_qs(urlparse(driver.current_url).query).get("status") == [status]
    assert episode_ids(driver) == [r["episode_id"] for r in results if r["status"] == status]
    assert len(episode_ids(driver)) == n
    visit()
    others = " ".join(f"{r['task']} {r.get('prediction')} {r.get('gold')} {r['episode_id']}".lower()
                      for r in results if r is not results[1])
    words = [w.strip(".,?!\"'$()") for w in results[1]["task"][:250].split()]
    word = max((w for w in words if w.lower() not in others), key=len)
    driver = visit(f"/run/{records.key('eval-a')}")
    css(driver, "form#filters input[name=q]")[0].send_keys(word)
    click_and_load(driver, css(driver, "form#filters button[type=submit]")[0])
    assert parse_qs(urlparse(driver.current_url).query).get("q") == [word]
    assert episode_ids(driver) == [results[1]["episode_id"]], word
    visit()
    driver = visit(f"/run/{records.key('eval-a')}?q=zz-no-such-text-zz")
    assert episode_ids(driver) == []
    driver = visit(f"/run/{records.key('eval-a')}")
    for desc in (False, True):
        click_and_load(driver, next(a for a in css(driver, "table#episodes th a.sort") if a.text.startswith("tokens")))
        assert "sort=tokens" in driver.current_url and ("desc=1" in driver.current_url) == desc, driver.current_url
        visit()
        order = [tokens(next(r for r in results if r["episode_id"] == i)) for i in episode_ids(driver)]
        assert len(order) == len(results) and order == sorted(order, reverse=desc), (desc, order)
    for _ in range(2):  # ascending, then descending
        click_and_load(driver, next(a for a in css(driver, "table#episodes th a.sort") if a.text.startswith("id")))
    assert "sort=id" in driver.current_url and "desc=1" in driver.current_url, driver.current_url
    assert episode_ids(driver) == sorted((r["episode_id"] for r in results), reverse=True)
    visit()


def test_vote_table_and_an_opened_sample(records: Records, visit: Visit) -> None:
    vote = records.lines("sc", "self_consistency.jsonl")[0]
    driver = visit(f"/run/{records.key('sc')}")
    click_and_load(driver, wait_for(driver, "a#votes-link")[0])
    visit()
    click_and_load(driver, wait_for(driver, "a[href*='/vote/1']")[0])
    rows = wait_for(driver, "table#votes tbody tr")
    visit()
    assert len(rows) == len(vote["votes"]) + bool(vote["abstained"]), [r.text for r in rows]
    if vote["abstained"]:  # samples without an answer (the tiny model often has none): one row says which
        assert "abstained" in rows[-1].text and str(vote["abstained"][0]) in rows[-1].text
    for row, entry in zip(rows[:len(vote["votes"])], vote["votes"], strict=True):
        assert " ".join(entry["answer"].split())[:30] in " ".join(row.text.split()) and str(entry["votes"]) in row.text
    samples = css(driver, "table#samples a.sample-link")
    assert len(samples) == len(vote["samples"])
    last = vote["samples"][-1]
    click_and_load(driver, samples[-1])
    open_trajectory(driver)
    visit()
    assert len(css(driver, "ol#steps li.step")) == len(last["trajectory"]["steps"])
    assert urlparse(driver.current_url).path.endswith(f"/vote/1/sample/{len(vote['samples']) - 1}")


def test_search_tree_svg_chosen_path_and_node_details(records: Records, visit: Visit) -> None:
    tree = records.lines("search", "search.jsonl")[0]
    driver = visit(f"/run/{records.key('search')}")
    click_and_load(driver, wait_for(driver, "a#searches-link")[0])
    visit()
    click_and_load(driver, wait_for(driver, "a[href*='/search/1']")[0])
    nodes = wait_for(driver, "svg#tree a.node")
    visit()
    assert len(nodes) == len(tree["nodes"]) and len(css(driver, "svg#tree a.node circle")) >= len(nodes)
    assert len(css(driver, "svg#tree .chosen")) >= len(tree["chosen"])
    target = next(n for n in tree["nodes"] if n["id"] == (tree["chosen"] or [tree["nodes"][-1]["id"]])[-1])
    link = next(n for n in nodes if parse_qs(urlparse(href(driver, n)).query).get("node") == [str(target["id"])])
    click_and_load(driver, link.find_element(By.CSS_SELECTOR, "circle"))
    details = wait_for(driver, "section#node")[0].text
    visit()
    assert parse_qs(urlparse(driver.current_url).query).get("node") == [str(target["id"])]
    for key in ("action", "thought", "answer"):
        value = " ".join((target.get(key) or "").split())[:30]
        if value:
            assert value in " ".join(details.split()), (key, value, details)


def test_compare_lists_the_same_episodes_with_change_classes(records: Records, visit: Visit) -> None:
    a = {r["episode_id"]: r for r in records.lines("eval-a", "results.jsonl")}
    b = {r["episode_id"]: r for r in records.lines("eval-b", "results.jsonl")}
    driver = visit("/")
    Select(css(driver, "form#compare select[name=a]")[0]).select_by_value(records.key("eval-a"))
    Select(css(driver, "form#compare select[name=b]")[0]).select_by_value(records.key("eval-b"))
    click_and_load(driver, css(driver, "form#compare [type=submit]")[0])
    rows = wait_for(driver, "table#compare tr.pair")
    visit()
    assert parse_qs(urlparse(driver.current_url).query) == {"a": [records.key("eval-a")], "b": [records.key("eval-b")]}
    assert len(rows) == len(a) == len(b) and set(a) == set(b)
    shown = set()
    for row in rows:
        ids = [i for i in a if i in row.text]
        assert len(ids) >= 1, row.text
        ep = max(ids, key=len)
        shown.add(ep)
        sa, sb = a[ep]["success"], b[ep]["success"]
        change = {(False, True): "fixed", (True, False): "broken", (True, True): "same_success",
                  (False, False): "same_failure"}[(sa, sb)]
        classes = set(row.get_attribute("class").split())
        assert change in classes and not (classes & CHANGES) - {change}, (ep, classes)
    assert shown == set(a) and css(driver, "dl#changes")


def test_live_rows_appear_without_reload(records: Records, visit: Visit) -> None:
    source = (records.runs["eval-a"] / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    new_id = json.loads(source[2])["episode_id"]
    driver = visit(f"/run/{records.key('live')}")
    wait_for(driver, "table#episodes[data-live='1']")
    assert len(css(driver, "table#episodes tr.episode")) == 2 and new_id not in episode_ids(driver)
    driver.execute_script("window.__marker = 'still here';")
    navigations = driver.execute_script("return performance.getEntriesByType('navigation').length")
    with (records.runs["live"] / "results.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(source[2])
    try:
        WebDriverWait(driver, 30).until(lambda d: new_id in episode_ids(d))
    except Exception:  # noqa: BLE001
        pytest.fail(f"the appended row {new_id} did not appear within 30 s; rows: {episode_ids(driver)}")
    visit.snap()
    assert driver.execute_script("return window.__marker") == "still here", "the page was reloaded"
    assert driver.execute_script("return performance.getEntriesByType('navigation').length") == navigations
    assert len(css(driver, "table#episodes tr.episode")) == 3
    row = css(driver, "table#episodes tr.episode")[-1]
    assert new_id in row.text and row.find_element(By.CSS_SELECTOR, "a.episode-link").get_attribute("href")


def _live_line(records: Records, episode_id: str) -> str:
    """eval-a's third result as a new line of a live run, under another episode id."""
    line = json.loads((records.runs["eval-a"] / "results.jsonl").read_text(encoding="utf-8").splitlines()[2])
    return json.dumps({**line, "episode_id": episode_id}) + "\n"


def _wait_for_row(driver: Any, episode_id: str, what: str) -> None:
    try:
        WebDriverWait(driver, 30).until(lambda d: episode_id in episode_ids(d))
    except Exception:  # noqa: BLE001 - a timeout: say what the table shows
        rows = [r.text for r in css(driver, "table#episodes tr.episode")]
        pytest.fail(f"{what} did not appear within 30 s on {driver.current_url}; rows: {rows}; "
                    f"{css(driver, '#shown')[0].text if css(driver, '#shown') else ''}")


def test_live_rows_follow_the_page_filter(records: Records, visit: Visit) -> None:
    """A new row that misses the page's text filter never appears; one that matches does."""
    driver = visit(f"/run/{records.key('live-filtered')}?q=live-match")
    wait_for(driver, "table#episodes[data-live='1']")
    assert episode_ids(driver) == []
    driver.execute_script("window.__marker = 'still here';")
    with (records.runs["live-filtered"] / "results.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(_live_line(records, "live-skip-1") + _live_line(records, "live-match-1"))
    _wait_for_row(driver, "live-match-1", "the matching new row")
    time.sleep(2.5)  # one more poll: nothing else may arrive
    visit.snap()
    assert driver.execute_script("return window.__marker") == "still here", "the page was reloaded"
    assert episode_ids(driver) == ["live-match-1"], "a row that misses the filter appeared"


def test_live_torn_tail_becomes_a_row_once_complete(records: Records, visit: Visit) -> None:
    """A result line written in two parts (seen torn by a poll in between) is shown as a normal row once complete."""
    driver = visit(f"/run/{records.key('live-torn')}")
    wait_for(driver, "table#episodes[data-live='1']")
    driver.execute_script("window.__marker = 'still here';")
    line = _live_line(records, "live-torn-1")
    with (records.runs["live-torn"] / "results.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(line[:len(line) // 2])
        fh.flush()
        time.sleep(3.5)  # more than one poll (2 s) sees the torn half line
        visit.snap()
        fh.write(line[len(line) // 2:])
    _wait_for_row(driver, "live-torn-1", "the completed line (torn at the previous poll)")
    visit.snap()
    assert driver.execute_script("return window.__marker") == "still here", "the page was reloaded"
    problems = [r.text for r in css(driver, "table#episodes tr.episode.problem")]
    assert not problems, f"the torn half line is still shown after it was completed: {problems}"
    assert len(episode_ids(driver)) == 3


def crawl(driver: Any, visit: Visit, base: str, start: list[str], prefixes: tuple[str, ...],
          limit: int = 80) -> dict[str, str]:
    """Open every page linked from ``start`` under ``prefixes`` (queries: only ``?node=``); their URLs and texts.

    Each page is checked for elements an escaping bug would create.
    """
    seen: dict[str, str] = {}
    todo = list(start)
    while todo and len(seen) < limit:
        url = todo.pop(0)
        if url in seen:
            continue
        visit(url)
        seen[url] = body_text(driver)
        bad = driver.execute_script(INJECTED_JS)
        assert not bad, f"{url}: injected elements {bad}"
        for link in driver.execute_script(LINKS_JS):
            parts = urlparse(link.split("#")[0])
            if (link.startswith(base + "/") and parts.path.startswith(prefixes)
                    and (not parts.query or parts.query.startswith("node="))):
                todo.append(parts.geturl())
    rest = [u for u in todo if u not in seen]
    assert not rest, f"more than {limit} pages: {rest[:5]}"
    return seen


def test_hostile_records_stay_text(records: Records, view_server: str, browser: Any, visit: Visit,
                                   hostile: Hostile) -> None:
    keys = [records.key(n) for n in ("hostile-eval", "hostile-runs", "hostile-name")]
    driver = visit("/")
    assert hostile.folder in body_text(driver)
    pages = crawl(browser, visit, view_server, [view_server + "/", *(f"{view_server}/run/{k}" for k in keys)],
                  tuple(f"/run/{k}" for k in keys))
    parts = ("/episode/", "/trajectory/", "/prompt/", "/vote/", "/search/", "?node=", "/line/")
    for part in parts:
        assert any(part in url for url in pages), f"no {part} page is linked from the hostile runs: {list(pages)}"
    for url, text in pages.items():
        shows_records = any(p in url for p in ("/episode/", "/trajectory/", "/vote/", "?node=", "/line/"))
        if shows_records or url.endswith(tuple(f"/run/{k}" for k in keys)):
            assert hostile.script in text, f"{url} does not show the record's markup as text:\n{text[:800]}"
    text = pages[f"{view_server}/run/{keys[0]}/trajectory/traj-hostile-1"]
    assert hostile.template in text, text[:800]


@pytest.mark.parametrize("name", ["hostile-eval", "hostile-runs"])
def test_malformed_and_torn_lines_are_shown_as_such(records: Records, visit: Visit, hostile: Hostile,
                                                    name: str) -> None:
    driver = visit(f"/run/{records.key(name)}")
    rows = wait_for(driver, "table#episodes tr.episode")
    problems = css(driver, "table#episodes tr.episode.problem")
    assert len(rows) == 4 and len(problems) == 2, [r.text for r in rows]
    assert "malformed" in problems[0].text.lower() and "torn" in problems[1].text.lower(), [p.text for p in problems]
    link = href(driver, problems[0].find_element(By.CSS_SELECTOR, "a"))
    assert "/line/" in link
    text = body_text(visit(link))
    assert hostile.script in text and "oops" in text, text[:800]


def test_unknown_keys_and_lines_are_404_pages(records: Records, view_server: str, visit: Visit) -> None:
    ev, sc, search = records.key("eval-a"), records.key("sc"), records.key("search")
    for path in ("/run/000000000000", f"/run/{ev}/episode/999", f"/run/{ev}/episode/abc",
                 f"/run/{ev}/trajectory/no-such-trajectory", f"/run/{sc}/vote/99", f"/run/{search}/search/99",
                 f"/run/{ev}/line/results/999", "/no/such/page"):
        status, headers, _ = fetch(view_server + path)
        assert status == 404, (path, status)
        text = body_text(visit(path))
        assert "not found" in text.lower() or "404" in text, (path, text[:500])
        assert css(visit(), "a[href='/']"), f"{path}: the 404 page has no way back to the run list"
    status, _, _ = fetch(f"{view_server}/run/{search}/search/1?node=9999")
    assert status in (200, 404), status


def test_every_response_has_the_csp_and_a_foreign_host_is_refused(records: Records, view_server: str) -> None:
    for path in ("/", f"/run/{records.key('eval-a')}", "/run/000000000000"):
        status, headers, _ = fetch(view_server + path)
        assert headers.get("content-security-policy") == CSP, (path, status, headers)
    status, _, body = fetch(view_server + "/", host="evil.example:8765")
    assert status in (400, 403, 421), (status, body[:200])


def test_no_csp_violation_on_our_pages(console_problems: list[str], browser: Any) -> None:
    """Runs last: the pages above never tripped their own Content-Security-Policy (console log of Chromium)."""
    time.sleep(0.1)
    assert not console_problems, "\n".join(console_problems[:10])
