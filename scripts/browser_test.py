"""The risk console in headless Chromium (Debian's chromium and chromium-driver, python3-selenium).

Usage: browser_test.py CONSOLE_URL SCREENSHOT_DIR PERSONA_CLI
Run by scripts/browser-test.sh against a running console; exits 1 at the first step that fails.
"""
import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

base, shots, persona = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(shots, exist_ok=True)
options = webdriver.ChromeOptions()
for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def wait_for(predicate, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def follow(element):
    """Clicks `element` and waits until the page it leads to has replaced this one and loaded."""
    driver.execute_script("window.persona_old_page = true")

    def replaced():
        try:
            return driver.execute_script("return window.persona_old_page !== true && document.readyState === 'complete'")
        except Exception:  # the old document went away mid-question
            return False

    element.click()
    if not wait_for(replaced, 10):
        raise RuntimeError("the click did not lead to a new page")


def shot(name):
    driver.save_screenshot(os.path.join(shots, name + ".png"))


def sign_in(name, password):
    driver.get(base + "/signin")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    follow(driver.find_element(By.ID, "submit"))


try:
    driver.get(base + "/decisions")
    check(driver.current_url.endswith("/signin"), "signed out, the decisions page leads to sign-in")
    sign_in("alice", "not the password")
    error = driver.find_elements(By.ID, "error")
    check(bool(error) and "Wrong name or password" in error[0].text, "a wrong password is refused")
    shot("signin")
    sign_in("alice", "correct horse battery")
    check(driver.current_url.endswith("/decisions"), "the right password signs in")
    rows = driver.find_elements(By.CSS_SELECTOR, "#rows tr")
    check(len(rows) == 6, f"the six decisions are listed ({len(rows)})")
    shot("decisions")

    driver.get(base + "/decisions?sort=score")
    scores = [int(r.find_elements(By.TAG_NAME, "td")[5].text) for r in driver.find_elements(By.CSS_SELECTOR, "#rows tr")]
    check(len(scores) == 6 and scores[0] == 900 and scores == sorted(scores, reverse=True), f"sorted by score, highest first ({scores})")

    # Filter to reviews, open the one there, label it.
    driver.get(base + "/decisions?action=review")
    rows = driver.find_elements(By.CSS_SELECTOR, "#rows tr")
    check(len(rows) == 1 and "web-2" in rows[0].text, "the action filter finds the review")
    follow(rows[0].find_element(By.TAG_NAME, "a"))
    check(driver.find_element(By.ID, "action").text == "review", "the decision page shows its action")
    check("big" in driver.find_element(By.ID, "reasons").text, "and the rule that fired")
    timeline = driver.find_elements(By.CSS_SELECTOR, "#timeline tr")
    check(len(timeline) == 3 and "purchase" in timeline[0].text and "view" in timeline[2].text,
          f"the user's three events from the log, newest first ({[r.text for r in timeline]})")
    decision_url = driver.current_url
    follow(driver.find_element(By.ID, "label-confirmed_fraud"))
    check("confirmed_fraud" in driver.find_element(By.ID, "label").text, "a label from the page is stored")
    shot("decision")
    follow(driver.find_element(By.ID, "replay"))
    check("Matches" in driver.find_element(By.ID, "verdict").text, "the decision replayed from its stored inputs matches")
    shot("replay")

    # The review opened a case: work it from the queue to resolved.
    driver.get(base + "/cases")
    check("web-2" in driver.find_element(By.ID, "cases").text, "the review's case waits in the order team's queue")
    shot("cases")
    follow(driver.find_element(By.ID, "take-order"))
    check(driver.find_element(By.ID, "status").text == "investigating" and driver.find_element(By.ID, "assignee").text == "alice",
          "take next gives alice the case, investigating")
    driver.find_element(By.ID, "comment").send_keys("called the customer: the card is in their hand")
    follow(driver.find_element(By.ID, "add-comment"))
    check("the card is in their hand" in driver.find_element(By.ID, "history").text, "the comment is kept with her name")
    Select(driver.find_element(By.ID, "status-select")).select_by_visible_text("waiting")
    follow(driver.find_element(By.ID, "change"))
    check(driver.find_element(By.ID, "status").text == "waiting", "the case waits for the customer")
    driver.find_element(By.ID, "comment").send_keys("the bank confirmed the payment")
    follow(driver.find_element(By.ID, "resolve-legitimate"))
    check(driver.find_element(By.ID, "status").text == "resolved" and driver.find_element(By.ID, "outcome").text == "legitimate",
          "resolved with its outcome")
    shot("case")
    follow(driver.find_element(By.ID, "decision"))
    check("legitimate" in driver.find_element(By.ID, "label").text and "case:alice" in driver.find_element(By.ID, "label").text,
          "the outcome labelled the order")

    # A form posted without its CSRF token is refused.
    status = driver.execute_script(
        "const r = await fetch(arguments[0] + '/label', {method: 'POST', body: 'kind=legitimate', "
        "headers: {'Content-Type': 'application/x-www-form-urlencoded'}}); return r.status;",
        decision_url,
    )
    check(status == 403, f"a label posted without the CSRF token is refused ({status})")

    # A new decision appears in the open list without a reload.
    driver.get(base + "/decisions")
    marker = driver.execute_script("window.persona_marker = 1; return window.persona_marker;")
    subprocess.run([persona, "risk", "score", "--user", "200", "--order", "web-new", "--amount", "30"], check=True,
                   stdout=subprocess.DEVNULL)
    check(wait_for(lambda: "web-new" in driver.find_element(By.ID, "rows").text, 10),
          "a new decision appears in the open list")
    check(driver.execute_script("return window.persona_marker;") == marker, "without a reload")

    # An analyst may read the rules but not publish them.
    driver.get(base + "/rules")
    check(not driver.find_elements(By.ID, "publish"), "an analyst sees no publish button")
    status = driver.execute_script(
        "const body = new URLSearchParams({csrf: document.querySelector('[name=csrf]').value, source: 'x: amount > 1 => review'});"
        "const r = await fetch('/rules/publish', {method: 'POST', body}); return r.status;")
    check(status == 403, f"with four-eyes on, an analyst's publish is refused ({status})")

    follow(driver.find_element(By.ID, "signout"))
    check(driver.current_url.endswith("/signin"), "sign-out leads to sign-in")
    driver.get(base + "/decisions")
    check(driver.current_url.endswith("/signin"), "and the session is over")

    # A rule author edits the rules: a typo shows at its line as they type.
    sign_in("rob", "another good password")
    driver.get(base + "/rules")
    check(driver.find_element(By.ID, "active").text == "v1", "the rules in force are v1")
    editor = driver.find_element(By.ID, "source")
    editor.clear()
    editor.send_keys("huge: amount > 5000 => decline, score +900\nbig: amount > => review\n")
    check(wait_for(lambda: "line 2" in driver.find_element(By.ID, "errors").text), "the typo's error names line 2")
    shot("rules")
    editor.clear()
    editor.send_keys("huge: amount > 5000 => decline, score +900\nbig: amount > 25 => review\n")
    check(wait_for(lambda: driver.find_element(By.ID, "errors").text == ""
                   and "valid" in driver.find_element(By.ID, "valid").text), "the corrected draft is valid")
    follow(driver.find_element(By.ID, "backtest"))
    summary = driver.find_element(By.ID, "summary").text
    check("replayed" in summary and "2 would be decided otherwise" in summary, f"the backtest replays the decisions: {summary}")
    shot("backtest")
    # Four-eyes is on: the publish waits as a draft until a second person approves it.
    follow(driver.find_element(By.ID, "publish"))
    check("awaits a second person" in driver.find_element(By.ID, "notice").text
          and driver.find_element(By.ID, "active").text == "v1", "with four-eyes the publish is a draft; v1 stays in force")
    check(not driver.find_elements(By.CSS_SELECTOR, "[id^=approve-]"), "its author gets no approve button")
    shot("four-eyes")
    follow(driver.find_element(By.ID, "signout"))
    sign_in("ada", "admin of the console")
    driver.get(base + "/rules")
    follow(driver.find_element(By.CSS_SELECTOR, "[id^=approve-]"))
    check(driver.find_element(By.ID, "active").text == "v2", "a second person approves it: v2 is in force")
    follow(driver.find_element(By.ID, "signout"))
    sign_in("rob", "another good password")
    subprocess.run([persona, "risk", "score", "--user", "201", "--order", "web-after", "--amount", "150"], check=True,
                   stdout=subprocess.DEVNULL)
    driver.get(base + "/decisions?order=web-after")
    follow(driver.find_element(By.CSS_SELECTOR, "#rows tr a"))
    page = driver.find_element(By.TAG_NAME, "body").text
    check("rules v2" in page and driver.find_element(By.ID, "action").text == "review", "the next decision is made by v2")
    driver.get(base + "/rules")
    driver.find_element(By.ID, "diff-a").send_keys("1")
    driver.find_element(By.ID, "diff-b").send_keys("2")
    follow(driver.find_element(By.ID, "diff"))
    diff = driver.find_element(By.ID, "diff").text
    check("- big: amount > 500 => review" in diff and "+ big: amount > 25 => review" in diff, f"the diff shows the changed line: {diff!r}")
    shot("diff")

    # Lists: a block entry added on the page declines the user's next order.
    driver.get(base + "/lists")
    driver.find_element(By.ID, "field").send_keys("user")
    driver.find_element(By.ID, "value").send_keys("201")
    driver.find_element(By.ID, "reason").send_keys("ring, seen twice")
    follow(driver.find_element(By.ID, "add"))
    check("ring, seen twice" in driver.find_element(By.ID, "entries").text, "the entry is listed")
    subprocess.run([persona, "risk", "score", "--user", "201", "--order", "web-blocked", "--amount", "10"], check=True,
                   stdout=subprocess.DEVNULL)
    driver.get(base + "/decisions?order=web-blocked")
    follow(driver.find_element(By.CSS_SELECTOR, "#rows tr a"))
    check(driver.find_element(By.ID, "action").text == "decline" and "list:block:user" in driver.find_element(By.ID, "reasons").text,
          "the next decision of the user is declined by the list")
    driver.get(base + "/lists")
    driver.find_element(By.ID, "csv").send_keys("list,field,value,reason,expires\nblock,device,dev-77,chargebacks,2099-01-01\n"
                                                "allow,email,vip@example.com,\"key account, since 2019\",\n")
    follow(driver.find_element(By.ID, "import"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#entries tr")
    check(len(rows) == 4, f"the CSV's two entries are added ({len(rows) - 1} entries)")
    shot("lists")
    csv = driver.execute_script("const r = await fetch('/lists.csv'); return await r.text();")
    check('"key account, since 2019"' in csv and "block,user,201" in csv, "the CSV download holds every entry, quoted where needed")

    # The dashboard draws the day's decisions and each rule's hits with its false positives.
    driver.get(base + "/dashboard")
    check(len(driver.find_elements(By.CSS_SELECTOR, "svg")) == 2, "the dashboard draws two charts")
    hits = driver.find_element(By.ID, "rule-hits").text
    check("huge" in hits and "big" in hits, f"each rule in force has a row: {hits!r}")
    shot("dashboard")
    status = driver.execute_script("const r = await fetch('/audit'); return r.status;")
    check(status == 403, f"the audit log is refused to a rule author ({status})")

    # An admin reads the merged audit log: every change names the person it was made for.
    follow(driver.find_element(By.ID, "signout"))
    sign_in("ada", "admin of the console")
    driver.get(base + "/audit")
    audit = driver.find_element(By.ID, "audit").text
    check("Risk/Label" in audit and "alice" in audit, "the label is audited as alice's")
    check("Risk/PublishRules" in audit and "Risk/UpdateLists" in audit and "rob" in audit, "the rules and lists changes as rob's")
    driver.get(base + "/audit?person=rob")
    rows = driver.find_elements(By.CSS_SELECTOR, "#audit tr")[1:]
    check(rows and all("rob" in r.text for r in rows), f"the person filter keeps rob's entries ({len(rows)})")
    shot("audit")
    csv = driver.execute_script("const r = await fetch(document.getElementById('csv').href); return await r.text();")
    check(csv.startswith("time,service,token_id") and csv.count("\n") == len(rows) + 1, "the CSV export holds the filtered entries")
finally:
    driver.quit()

if failures:
    print(f"browser test FAILED: {len(failures)} step(s)")
    sys.exit(1)
print("browser test passed")
