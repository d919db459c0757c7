"""The web console, used as a person would, in a real headless Chromium driven by selenium.

Run by the Rust console test with the venv and the paths that tests/browser/install.sh prints:

    python console.py --url http://127.0.0.1:PORT --chromium PATH --chromedriver PATH \
        --screenshots DIR

What the test sets up first: a three-node cluster; topic `orders` with 3 partitions and 10
records, keys k0..k9 and JSON values like {"id": 3, "item": "book"}, all in partition 0
(offsets 0..9); group `billing` with offset 4 committed on orders partition 0 (lag 6); topic
`orders.dlq` (1 partition) with one parked record: key `bad`, value {"id": 99}, headers
dlq.source.topic=orders and dlq.reason=poison.

The steps, one function each (step_a .. step_g), click through the console from its overview,
check what each page shows against the ids and classes the console's pages carry, and save a
screenshot after each step into DIR. Every wait is explicit and bounded (WAIT_S per wait,
PAGE_LOAD_S per page load, TOTAL_S for the lot); nothing sleeps.

Exits 0 after printing `console scenario passed` when every check holds. On the first check
that does not, it saves DIR/failure.png and DIR/failure.html (the page source), prints
`FAILED: step ...: on PAGE: expected ...; found ...` on stderr and exits 1. chromedriver's own
log goes to DIR/chromedriver.log.
"""

import argparse
import os
import signal
import sys
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

PAGE_LOAD_S = 30  # one navigation
WAIT_S = 20  # one explicit wait
TOTAL_S = 300  # the whole scenario: a backstop should Chromium or chromedriver hang
CLEANUP_S = 30  # saving failure.png/failure.html and quitting, after a failure
CHROMIUM_ARGS = [
    "--headless=new",
    # Chromium will not start its sandbox as root, and tests run as root in a container.
    "--no-sandbox",
    # /dev/shm may be small in containers; Chromium then crashes while rendering.
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


class Failed(Exception):
    """A check that did not hold; the message says on which page, what was expected and what
    was found."""


class OutOfTime(Exception):
    """The whole scenario ran past TOTAL_S."""


# What a cell's text is checked against: (description, predicate).
def exactly(text):
    return (repr(text), lambda found: found == text)


def starting_with(prefix):
    return (f"text starting with {prefix!r}", lambda found: found.startswith(prefix))


def containing(*parts):
    described = " and ".join(repr(part) for part in parts)
    return (f"text containing {described}", lambda found: all(part in found for part in parts))


def matcher(expected):
    return exactly(expected) if isinstance(expected, str) else expected


class Console:
    """The browser on the console, with the few helpers the steps are written in."""

    def __init__(self, driver, base_url, screenshots):
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self.screenshots = screenshots

    # Where we are, and failing there.

    def where(self):
        try:
            url, title = self.driver.current_url, self.driver.title
        except WebDriverException:
            return "an unknown page (the browser did not say)"
        return f"{url} (title {title!r})" if title else url

    def path(self):
        return urlsplit(self.driver.current_url).path.rstrip("/") or "/"

    def fail(self, expected, found):
        raise Failed(f"on {self.where()}: expected {expected}; found {found}")

    def wait(self, expected, condition, found):
        """Waits up to WAIT_S for condition(driver) to be truthy and returns its value; else
        fails with `expected` and what found() says is there instead."""
        try:
            return WebDriverWait(
                self.driver,
                WAIT_S,
                # What a page that is still being replaced can throw.
                ignored_exceptions=(
                    NoSuchElementException,
                    StaleElementReferenceException,
                    JavascriptException,
                ),
            ).until(condition)
        except TimeoutException:
            try:
                seen = found()
            except WebDriverException as error:
                seen = f"nothing readable ({error.msg})"
            self.fail(f"{expected} within {WAIT_S} s", seen)

    # Elements.

    def elements(self, css, count=None):
        """Waits for the elements matching css: exactly `count` of them, or at least one when
        count is None. Returns them."""

        def matching(driver):
            found = driver.find_elements(By.CSS_SELECTOR, css)
            enough = len(found) == count if count is not None else len(found) > 0
            return (found,) if enough else None

        wanted = f"{count} element(s)" if count is not None else "an element"
        (found,) = self.wait(
            f"{wanted} matching {css!r}",
            matching,
            lambda: f"{len(self.driver.find_elements(By.CSS_SELECTOR, css))} matching",
        )
        return found

    def element(self, css):
        return self.elements(css)[0]

    def expect_text(self, css, expected):
        """Waits for the first element matching css to have text that `expected` (a string to
        equal, or a matcher) accepts."""
        described, accepts = matcher(expected)

        def text():
            found = self.driver.find_elements(By.CSS_SELECTOR, css)
            return found[0].text.strip() if found else None

        def holds(_driver):
            value = text()
            return value is not None and accepts(value)

        self.wait(
            f"{css!r} with {described}",
            holds,
            lambda: "no such element" if text() is None else f"text {text()!r}",
        )

    @staticmethod
    def cell_text(row, css):
        cells = row.find_elements(By.CSS_SELECTOR, css)
        return cells[0].text.strip() if cells else None

    def cells_hold(self, row, cells):
        return all(
            (text := self.cell_text(row, css)) is not None and matcher(expected)[1](text)
            for css, expected in cells.items()
        )

    def describe_rows(self, rows_css, cells):
        rows = self.driver.find_elements(By.CSS_SELECTOR, rows_css)
        if not rows:
            return f"no rows matching {rows_css!r}"
        shown = [{css: self.cell_text(row, css) for css in cells} for row in rows[:20]]
        more = f" (and {len(rows) - 20} more)" if len(rows) > 20 else ""
        return f"{len(rows)} row(s): {shown}{more}"

    def row_where(self, rows_css, cells):
        """Waits for a row matching rows_css whose cells (css -> expected text or matcher) all
        hold, and returns it."""
        expected = ", ".join(f"{css} {matcher(want)[0]}" for css, want in cells.items())

        def found_row(driver):
            for row in driver.find_elements(By.CSS_SELECTOR, rows_css):
                if self.cells_hold(row, cells):
                    return row
            return None

        return self.wait(
            f"a row {rows_css!r} with {expected}",
            found_row,
            lambda: self.describe_rows(rows_css, cells),
        )

    def check_cells(self, row, what, cells):
        """Checks the cells of a row already on the page, without waiting."""
        for css, expected in cells.items():
            described, accepts = matcher(expected)
            text = self.cell_text(row, css)
            if text is None or not accepts(text):
                self.fail(
                    f"{what}'s {css} to be {described}",
                    "no such cell" if text is None else f"{text!r}",
                )

    # Navigation and forms.

    def open(self, path):
        self.driver.get(self.base_url + path)

    def follow(self, target, what, expected_path=None):
        """Clicks target (a link or a submit button) and waits for the page it leads to."""
        old_page = self.driver.find_element(By.TAG_NAME, "html")
        target.click()
        self.wait(
            f"a new page after {what}",
            expected_conditions.staleness_of(old_page),
            lambda: "the same page still showing" + self.invalid_fields(),
        )
        self.wait(
            f"the page after {what} to finish loading",
            lambda driver: driver.execute_script("return document.readyState") == "complete",
            lambda: "document.readyState "
            + repr(self.driver.execute_script("return document.readyState")),
        )
        if expected_path is not None:
            self.wait(
                f"to land on {expected_path} after {what}",
                lambda _driver: self.path() == expected_path,
                lambda: f"path {self.path()}",
            )

    def click_through(self, css, expected_path=None):
        self.follow(self.element(css), f"clicking {css}", expected_path)

    def invalid_fields(self):
        """What the browser's form validation holds against, if anything: it keeps a form
        from being submitted without a word to the driver."""
        invalid = self.driver.execute_script(
            "return Array.from(document.querySelectorAll('input:invalid, select:invalid,"
            " textarea:invalid')).map(f => (f.name || f.id) + ': ' + f.validationMessage);"
        )
        return f" (the browser rejects {invalid})" if invalid else ""

    def fill(self, form_css, name, value, tags=("input",)):
        """Sets the field named `name` in form_css to value, checking the field's tag is one
        of tags. A select gets the option whose value, or else whose text, is value."""
        field = self.element(f"{form_css} [name={name!r}]")
        if field.tag_name not in tags:
            self.fail(f"field {name!r} of {form_css} to be {' or '.join(tags)}", field.tag_name)
        if field.tag_name == "select":
            choice = Select(field)
            try:
                choice.select_by_value(value)
            except NoSuchElementException:
                try:
                    choice.select_by_visible_text(value)
                except NoSuchElementException:
                    options = [option.get_attribute("value") for option in choice.options]
                    self.fail(f"an option {value!r} in select {name!r} of {form_css}", options)
            selected = choice.first_selected_option
            shown = [selected.get_attribute("value"), selected.text.strip()]
        else:
            field.clear()
            if value:
                field.send_keys(value)
            shown = [field.get_property("value")]
        if value not in shown:
            self.fail(f"field {name!r} of {form_css} to hold {value!r} once filled", shown[0])
        return field

    # Evidence.

    def screenshot(self, name):
        path = os.path.join(self.screenshots, name)
        if not self.driver.save_screenshot(path):
            raise Failed(f"could not save the screenshot {path} of {self.where()}")

    def save_failure(self):
        """Saves failure.png and failure.html; returns the start of the page's text."""
        saved = []
        try:
            path = os.path.join(self.screenshots, "failure.png")
            if self.driver.save_screenshot(path):
                saved.append(path)
        except WebDriverException:
            pass
        try:
            path = os.path.join(self.screenshots, "failure.html")
            with open(path, "w", encoding="utf-8") as out:
                out.write(self.driver.page_source)
            saved.append(path)
        except (WebDriverException, OSError):
            pass
        try:
            text = " ".join(self.driver.find_element(By.TAG_NAME, "body").text.split())
        except WebDriverException:
            text = ""
        return saved, text[:400]


# The steps.


def open_topic(console, name):
    """From any page: the topic list, then the topic's own page."""
    console.click_through("a#nav-topics", "/topics")
    row = console.row_where("table#topics tr.topic", {"a.topic-link": name})
    console.follow(row.find_element(By.CSS_SELECTOR, "a.topic-link"), f"the {name} topic link")
    console.expect_text("h1", containing(name))


def step_a_overview(console):
    console.open("/")
    console.elements("table#brokers tr.broker", count=3)
    console.expect_text("#controller", ("non-empty text", lambda text: text != ""))
    console.expect_text("#under-replicated", "0")
    console.expect_text("#offline", "0")
    console.screenshot("overview.png")


def step_b_topic(console):
    open_topic(console, "orders")
    console.elements("table#partitions tr.partition", count=3)
    console.elements("svg#throughput", count=1)
    console.screenshot("topic.png")


def step_c_create_topic(console):
    console.click_through("a#nav-topics", "/topics")
    console.click_through("a#new-topic")
    form = "form#create-topic"
    console.fill(form, "name", "console-made")
    console.fill(form, "partitions", "2")
    console.fill(form, "replication_factor", "3")
    console.fill(form, "configs", "retention.ms=86400000", tags=("textarea",))
    console.click_through("button#create")
    console.expect_text("h1", containing("console-made"))
    console.elements("table#partitions tr.partition", count=2)
    console.row_where("table#configs tr.config", {".key": "retention.ms", ".value": "86400000"})


def step_d_alter_configs(console):
    form = "form#alter-configs"
    console.fill(form, "key", "retention.ms")
    console.fill(form, "value", "3600000")
    console.click_through("button#alter")
    console.expect_text("#flash", containing("retention.ms"))
    console.row_where("table#configs tr.config", {".key": "retention.ms", ".value": "3600000"})
    console.screenshot("configs.png")


def step_e_records(console):
    open_topic(console, "orders")
    console.click_through("a#browse", "/topics/orders/records")
    form = "form#browse-form"
    console.fill(form, "partition", "0", tags=("select", "input"))
    console.fill(form, "offset", "2")
    console.fill(form, "timestamp", "")
    console.fill(form, "limit", "5")
    console.click_through("button#browse-submit")
    rows = console.elements("table#records tr.record", count=5)
    # The value is shown pretty-printed: `.text` is the rendered text, so its line breaks
    # are there only when the page shows them (a <pre>, or white-space: pre*).
    console.check_cells(
        rows[0],
        "the first record",
        {".offset": "2", ".key": "k2", ".value": containing('"item": "book"', "\n")},
    )
    console.screenshot("records.png")


def step_f_group(console):
    console.click_through("a#nav-groups", "/groups")
    row = console.row_where("table#groups tr.group", {"a.group-link": "billing"})
    console.follow(row.find_element(By.CSS_SELECTOR, "a.group-link"), "the billing group link")
    console.row_where(
        "table#lag tr.lag",
        {".topic": "orders", ".partition": "0", ".committed": "4", ".lag": "6"},
    )
    console.elements("svg#lag-history", count=1)
    console.screenshot("group.png")


def step_g_dlq(console):
    console.click_through("a#nav-dlq", "/dlq")
    row = console.row_where("table#dlqs tr.dlq", {"a.dlq-link": "orders.dlq", ".records": "1"})
    console.follow(row.find_element(By.CSS_SELECTOR, "a.dlq-link"), "the orders.dlq link")
    parked = console.elements("table#parked tr.parked", count=1)
    console.check_cells(
        parked[0], "the parked record", {".reason": "poison", ".source": starting_with("orders")}
    )
    console.click_through("button#redrive")
    console.expect_text("#flash", containing("redrove 1"))
    console.screenshot("dlq.png")


STEPS = [
    ("a (overview)", step_a_overview),
    ("b (topic page)", step_b_topic),
    ("c (create topic)", step_c_create_topic),
    ("d (alter configs)", step_d_alter_configs),
    ("e (record browser)", step_e_records),
    ("f (consumer group)", step_f_group),
    ("g (dead-letter queue)", step_g_dlq),
]


def start_browser(arguments):
    options = Options()
    options.binary_location = arguments.chromium
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    # With the driver's path given, selenium does not run Selenium Manager (which would try
    # to download a driver or a browser).
    service = Service(
        executable_path=arguments.chromedriver,
        log_output=os.path.join(arguments.screenshots, "chromedriver.log"),
    )
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(PAGE_LOAD_S)
    driver.set_script_timeout(WAIT_S)
    return driver


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the console, http://127.0.0.1:PORT")
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--chromedriver", required=True)
    parser.add_argument("--screenshots", required=True, help="a directory for the PNGs")
    arguments = parser.parse_args()
    os.makedirs(arguments.screenshots, exist_ok=True)

    def overall_timeout(_signum, _frame):
        raise OutOfTime(f"the scenario did not finish within {TOTAL_S} s")

    signal.signal(signal.SIGALRM, overall_timeout)
    signal.alarm(TOTAL_S)
    try:
        driver = start_browser(arguments)
    except (WebDriverException, OutOfTime) as error:
        message = error.msg if isinstance(error, WebDriverException) else str(error)
        if error.__cause__ is not None:
            message += f" ({error.__cause__})"
        message = " ".join((message or "").split())
        print(
            f"FAILED: could not start headless {arguments.chromium} through"
            f" {arguments.chromedriver}: {message}"
            f" (see {os.path.join(arguments.screenshots, 'chromedriver.log')})",
            file=sys.stderr,
        )
        return 1

    console = Console(driver, arguments.url, arguments.screenshots)
    step = "setup"
    try:
        for step, run in STEPS:
            run(console)
        signal.alarm(0)
    except Exception as error:  # every failure, a check's or the browser's, ends the same way
        signal.alarm(0)
        # Asking the browser where it is, and for its screenshot, can hang with the browser:
        # bounded by CLEANUP_S, after which the bare message is all there is.
        failure = {"message": f"step {step}: {type(error).__name__}: {error}"}

        def give_up(_signum, _frame):
            print(f"FAILED: {failure['message']}", file=sys.stderr)
            print(f"  (saving the evidence took over {CLEANUP_S} s; gave up)", file=sys.stderr)
            if driver.service.process is not None:
                driver.service.process.kill()
            os._exit(1)

        signal.signal(signal.SIGALRM, give_up)
        signal.alarm(CLEANUP_S)
        failure["message"] = f"step {step}: {describe(error, console)}"
        saved, text = console.save_failure()
        print(f"FAILED: {failure['message']}", file=sys.stderr)
        if text:
            print(f"  the page's text begins: {text}", file=sys.stderr)
        print(f"  saved: {', '.join(saved) if saved else 'nothing'}", file=sys.stderr)
        driver.quit()
        signal.alarm(0)
        return 1
    driver.quit()
    print("console scenario passed")
    return 0


def describe(error, console):
    """A failed check says where it failed; anything else (a click the page intercepted, a
    page load that timed out) gets the page it happened on."""
    if isinstance(error, Failed):
        return str(error)
    if isinstance(error, WebDriverException):
        # The browser's own message, without chromedriver's stack trace.
        message = " ".join((error.msg or "").split())
    else:
        message = str(error)
    return f"on {console.where()}: {type(error).__name__}: {message}"


if __name__ == "__main__":
    sys.exit(main())
