"""The pages in a real browser: Debian's Chromium driven by Playwright against live_server.

Each page must load with no console error, draw the expected traces with the expected point
counts (read from the plotly div's own `.data`), redraw when the selection changes, and
leave a screenshot in test-artifacts/ for a human to look at. Chromium is launched by its
path: no browser can be downloaded here (`make browser` installs Debian's). Without it the
tests skip on a developer's machine but fail on CI, where a skip would hide a broken build.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from predictor.models import StockPrediction, TrainingSession
from tests.checks import present
from tests.training_support import BTC_FILE, ETH_FILE, import_days
from tests.web_support import make_evaluation, make_session
from utils.charts import FITTED_TRACE, FUTURE_TRACE, LIVE_TRACE

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.django_db(transaction=True)

# Reports every Content-Security-Policy violation of a page to its console.
CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', event => console.error(
    'CSP violation: ' + event.violatedDirective + ' blocked ' + (event.blockedURI || 'inline')
    + ' at ' + event.sourceFile + ':' + event.lineNumber));
"""

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between page actions are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture(params=[{"width": 1280, "height": 900}, {"width": 390, "height": 844}])
def page(request, browser):
    """A fresh page per test, on a laptop screen and a phone screen; console errors collected.

    Every page of every test must run under the Content-Security-Policy without a violation:
    each one is reported to the console (and Chromium logs its own "Refused to ..." line),
    and the test fails at its end if any was seen.
    """
    context = browser.new_context(viewport=request.param)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.console_errors = []
    page.csp_violations = []

    def on_console(message) -> None:
        if message.type == "error":
            page.console_errors.append(message.text)
        if "Content Security Policy" in message.text or "CSP violation" in message.text:
            page.csp_violations.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    page.device = "phone" if request.param["width"] < 600 else "laptop"
    yield page
    context.close()
    assert page.csp_violations == []


@pytest.fixture
def bars(tmp_path):
    import_days(tmp_path, BTC_FILE, "2020-06-01", "2020-07-14")
    import_days(tmp_path, ETH_FILE, "2019-07-01", "2019-07-10")


def trace_points(page, div_id: str) -> dict[str, int]:
    """{trace name: number of x values} as plotly.js holds them in the div."""
    return page.evaluate(
        """id => {
            const div = document.getElementById(id);
            if (!div || !div.data) return null;
            return Object.fromEntries(div.data.map(t => [t.name, t.x ? t.x.length : 0]));
        }""",
        div_id,
    )


def first_x(page, div_id: str, trace: int = 0) -> str:
    return page.evaluate(f"document.getElementById('{div_id}').data[{trace}].x[0]")


def wait_for_draw(page, count: int) -> None:
    # A function, not an expression: Playwright evaluates a bare expression with eval() in
    # the page, which the Content-Security-Policy (rightly) refuses.
    page.wait_for_function(f"() => Number(document.body.dataset.draws) >= {count}", timeout=15_000)


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{page.device}.png"), full_page=True)


def open_page(page, url: str) -> None:
    response = page.goto(url)
    assert response.status == 200
    wait_for_draw(page, 1)


def test_prices_page(page, live_server, bars):
    open_page(page, f"{live_server.url}/")
    assert trace_points(page, "chart-price") == {"Close": 7 * 24, "Volume": 7 * 24}
    assert first_x(page, "chart-price") == "2020-07-08T00:00"
    shoot(page, "prices")

    # Candlesticks over the whole stored range: aggregated, redrawn without a reload.
    page.evaluate("window.notReloaded = true")
    page.select_option("#id_style", "candles")
    wait_for_draw(page, 2)
    page.fill("#id_start", "2020-06-01")
    page.locator("#id_start").dispatch_event("change")
    wait_for_draw(page, 3)
    assert trace_points(page, "chart-price") == {"Price": 44 * 24, "Volume": 44 * 24}
    assert page.evaluate("document.getElementById('chart-price').data[0].type") == "candlestick"
    assert page.evaluate("window.notReloaded") is True
    assert "start=2020-06-01" in page.url and "style=candles" in page.url

    # Another symbol: its own default range.
    page.select_option("#id_symbol", "ETHUSD")
    wait_for_draw(page, 4)
    assert page.input_value("#id_start") == "2019-07-04"
    assert trace_points(page, "chart-price") == {"Price": 7 * 24, "Volume": 7 * 24}
    shoot(page, "prices-candles")

    assert page.console_errors == []

    # A bad range is a form error, and the chart stays as it was. The browser logs the
    # endpoint's 400 answer as a failed resource: the only console errors allowed from here.
    page.evaluate(  # both at once: filling one by one would draw the valid range between
        "document.getElementById('id_start').value = '2019-07-09';"
        "document.getElementById('id_end').value = '2019-07-05';"
    )
    page.click("button[type=submit]")
    page.wait_for_selector("[data-errors]:not([hidden])")
    assert "after the end day" in page.inner_text("[data-errors]")
    assert trace_points(page, "chart-price") == {"Price": 7 * 24, "Volume": 7 * 24}

    # A range with no bars: the empty state, no chart. Both days at once again: filling the
    # start alone would draw 2012-01-01..2019-07-05 (which has bars) and race the submit.
    page.evaluate(
        "document.getElementById('id_start').value = '2012-01-01';"
        "document.getElementById('id_end').value = '2012-01-31';"
    )
    page.click("button[type=submit]")
    wait_for_draw(page, 5)
    assert page.is_hidden("#chart-price")
    assert "No ETHUSD bars between 2012-01-01 and 2012-01-31" in page.inner_text("[data-empty]")
    assert page.console_errors and all("status of 400" in e for e in page.console_errors)


def test_forecast_page(page, live_server, bars):
    older = make_session(TrainingSession.Kind.PRODUCTION, created_offset=0, future=3)
    newest = make_session(TrainingSession.Kind.PRODUCTION, created_offset=5, future=5, seed=2)
    open_page(page, f"{live_server.url}/forecast/")
    assert trace_points(page, "chart-forecast") == {
        "Actual close": 7 * 24,
        FITTED_TRACE: 7 * 24,
        LIVE_TRACE: 0,
        FUTURE_TRACE: 5,
    }
    assert str(newest.id) in page.inner_text("[data-details]")
    assert "Only these forecasts are a verdict" in page.inner_text("[data-live-record]")
    shoot(page, "forecast")

    # The older session's last 6 arrived bars were forecast before they existed: live.
    live = StockPrediction.objects.filter(
        session=older, steps_ahead=1, actual_close__isnull=False
    ).order_by("-time")[:6]
    StockPrediction.objects.filter(pk__in=[row.pk for row in live]).update(live=True)
    page.select_option("#id_session", str(older.id))
    wait_for_draw(page, 2)
    points = trace_points(page, "chart-forecast")
    assert (points[FUTURE_TRACE], points[LIVE_TRACE], points[FITTED_TRACE]) == (3, 6, 7 * 24 - 6)
    assert str(older.id) in page.inner_text("[data-details]")
    assert "6 forecasts made before their bars, 6 scored" in page.inner_text("[data-live-record]")
    shoot(page, "forecast-live")

    page.fill("#id_start", "2020-06-01")
    page.fill("#id_end", "2020-07-15")
    page.click("button[type=submit]")
    wait_for_draw(page, 3)
    predicted = StockPrediction.objects.filter(session=older, actual_close__isnull=False).count()
    points = trace_points(page, "chart-forecast")
    assert points[FITTED_TRACE] + points[LIVE_TRACE] == predicted
    assert points["Actual close"] == 44 * 24
    assert page.console_errors == []

    page.goto(f"{live_server.url}/forecast/?session=not-a-session")
    assert "There is no production session" in page.inner_text("main")


def test_evaluation_page(page, live_server, bars):
    best = make_session(TrainingSession.Kind.EVALUATION, created_offset=0, rel_mae=0.9)
    worse = make_session(TrainingSession.Kind.EVALUATION, created_offset=5, rel_mae=1.3, seed=4)
    make_evaluation(best)
    make_evaluation(worse, mean=0.45, t=-2.9, p=0.002)
    open_page(page, f"{live_server.url}/evaluation/?session={best.id}")
    rows = StockPrediction.objects.filter(session=best).count()
    split = StockPrediction.objects.filter(session=best, time__lt=best.test_start).count()
    assert trace_points(page, "chart-predictions") == {
        "Actual close": rows,
        "Fitted, training part (in-sample)": split,
        "Predicted, test part": rows - split,
    }
    assert trace_points(page, "chart-loss") == {"loss": 2}
    equity = trace_points(page, "chart-equity")
    assert equity == {
        "Strategy, train part (in-sample)": split + 1,
        "Buy and hold, train part (in-sample)": split + 1,
        "Strategy, test part": rows - split + 1,
        "Buy and hold, test part": rows - split + 1,
    }
    assert "better than a coin" in page.inner_text("[data-details]")
    shoot(page, "evaluation")

    # The leaderboard sorts on a click; best relative MAE first to start with.
    def board() -> list[str]:
        return page.eval_on_selector_all(
            "#leaderboard tbody tr", "rows => rows.map(r => r.dataset.session)"
        )

    assert board() == [str(best.id), str(worse.id)]
    page.click("#leaderboard th:has-text('Test rel. MAE')")
    assert board() == [str(best.id), str(worse.id)]
    page.click("#leaderboard th:has-text('Test rel. MAE')")
    assert board() == [str(worse.id), str(best.id)]

    # Clicking a leaderboard row opens that session without a reload.
    page.click(f"#leaderboard tr[data-session='{worse.id}'] td:nth-child(3)")
    wait_for_draw(page, 2)
    assert page.input_value("#id_session") == str(worse.id)
    details = page.inner_text("[data-details]")
    assert "worse than a coin" in details and "-2.900" in details
    assert f"session={worse.id}" in page.url
    shoot(page, "evaluation-worse")
    assert page.console_errors == []


def test_every_page_runs_under_the_content_security_policy(page, live_server, bars):
    """Each page, signed out and then as staff (logged in through the login form): its
    policy header is there, its scripts ran (charts drawn where there are charts), and the
    page fixture finds no policy violation in the console."""
    from django.contrib.auth.models import User

    make_session(TrainingSession.Kind.PRODUCTION)
    evaluated = make_session(TrainingSession.Kind.EVALUATION, seed=3)
    make_evaluation(evaluated)
    User.objects.create_user("staff", password="a-long-staff-password", is_staff=True)
    failed = []

    def record_failure(response) -> None:
        if response.status >= 400:
            failed.append(response.url)

    page.on("response", record_failure)
    for path, chart in [
        ("/", "chart-price"),
        ("/forecast/", "chart-forecast"),
        (f"/evaluation/?session={evaluated.id}", "chart-equity"),
        ("/accounts/login/", None),
        ("/admin/login/", None),
    ]:
        response = page.goto(f"{live_server.url}{path}")
        assert (
            response.status == 200
            and "script-src 'self'" in response.headers["content-security-policy"]
        )
        if chart:
            wait_for_draw(page, 1)
            assert trace_points(page, chart), path
    page.fill("#id_username", "staff")
    page.fill("#id_password", "a-long-staff-password")
    page.click("[type=submit]")
    page.wait_for_url("**/admin/")
    for path in ("/jobs/", "/jobs/new/", "/admin/", "/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        assert "content-security-policy" in response.headers
    wait_for_draw(page, 1)
    shoot(page, "csp-every-page")
    # The admin's pages name no icon, so the browser asks for /favicon.ico (a request
    # Playwright does not always report): a 404 is the only error any page may log.
    assert all(url.endswith("/favicon.ico") for url in failed), failed
    assert [e for e in page.console_errors if "status of 404" not in e] == []
    assert page.csp_violations == []


@pytest.fixture
def job_bars(tmp_path):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


def test_launch_a_session_and_watch_it_finish(page, live_server, job_bars, workers):
    """Log in as staff, launch a tiny LSTM session from the form, and watch its job's page
    follow a real worker: status to succeeded, the loss curve drawn from the polled JSON."""
    from django.contrib.auth.models import User

    from predictor.models import Job

    User.objects.create_user("operator", password="pw", is_staff=True)
    workers.start()
    page.goto(f"{live_server.url}/jobs/new/")
    assert "/accounts/login/" in page.url  # the launch page asks for a login first
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw")
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{live_server.url}/jobs/new/")
    assert page.is_hidden("fieldset[data-show-for='backtest sweep']")

    # A bad window first: the command's message, nothing queued.
    page.select_option("#id_symbol", "BTCUSD")
    page.select_option("#id_model_kind", "lstm")
    page.fill("#id_window", "500")
    page.click("button[data-launch]")
    assert "too few bars: 120 bars" in page.inner_text("[data-errors]")
    assert Job.objects.count() == 0
    assert all("status of 400" in error for error in page.console_errors)  # the refused POST
    page.console_errors.clear()
    shoot(page, "job-launch-refused")

    for field, value in (("window", "12"), ("units", "4"), ("epochs", "2"), ("seed", "1")):
        page.fill(f"#id_{field}", value)
    page.fill("#id_batch_size", "16")
    page.click("button[data-launch]")
    page.wait_for_url(f"{live_server.url}/jobs/*/")
    job = Job.objects.get()
    assert page.url.endswith(f"/jobs/{job.id}/")
    assert "train lstm BTCUSD H (evaluation)" in page.inner_text("h1")
    page.evaluate("window.notReloaded = true")

    page.wait_for_selector("[data-poll][data-status='succeeded']", timeout=180_000)
    # Redrawn in place from the polled JSON, never reloaded.
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("Number(document.body.dataset.draws)") >= 2
    assert page.inner_text("[data-job-status]") == "succeeded"
    assert page.inner_text("[data-job-progress]") == "epoch 2/2"
    assert trace_points(page, "chart-loss")["loss"] == 2
    assert page.query_selector("button[data-cancel]") is None  # nothing left to cancel
    job.refresh_from_db()
    assert job.status == "succeeded" and present(job.session).status == "succeeded"
    link = page.get_attribute("[data-session-link]", "href")
    assert link == f"/evaluation/?session={job.session_id}"
    shoot(page, "job-finished")

    # The jobs list shows it, and the evaluation page lists its session.
    page.goto(f"{live_server.url}/jobs/")
    assert "succeeded" in page.inner_text(f"tr[data-job='{job.id}']")
    page.goto(f"{live_server.url}{link}")
    assert page.input_value("#id_session") == str(job.session_id)
    # Forecast and evaluated by the same job: ranked on the leaderboard, no command needed.
    assert page.query_selector(f"#leaderboard tr[data-session='{job.session_id}']") is not None
    assert page.console_errors == []


# Compare, downloads, labels, layout ---------------------------------------------------------


def _evaluated(window: int, offset: int) -> TrainingSession:
    session = make_session(TrainingSession.Kind.EVALUATION, created_offset=offset, seed=offset)
    TrainingSession.objects.filter(pk=session.pk).update(window=window)
    session.refresh_from_db()
    make_evaluation(session)
    return session


def no_overflow(page) -> None:
    """Nothing wider than the screen: the page never scrolls sideways."""
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth, "
        "Array.from(document.querySelectorAll('body *')).filter(e => "
        "e.getBoundingClientRect().right > window.innerWidth + 1 && "
        "!e.closest('.table-scroll')).slice(0, 3).map(e => e.tagName + '.' + e.className)]"
    )
    assert widths[0] == widths[1], (
        f"{page.url} is {widths[0]} px wide on a {widths[1]} px screen: {widths[2]}"
    )


def test_compare_from_the_leaderboard(page, live_server, bars):
    first = _evaluated(12, 0)
    second = _evaluated(48, 5)
    open_page(page, f"{live_server.url}/evaluation/?session={first.id}")
    # Labels tell the sessions apart: the differing window is in the select's text.
    options = page.eval_on_selector_all("#id_session option", "os => os.map(o => o.textContent)")
    assert any("W 48" in text for text in options) and any("W 12" in text for text in options)
    assert page.is_disabled("[data-compare-button]")
    page.check(f"#leaderboard input[value='{first.id}']")
    assert page.input_value("#id_session") == str(first.id)  # a tick opens no session
    page.check(f"#leaderboard input[value='{second.id}']")
    assert page.inner_text("[data-compare-hint]") == "2 picked"
    page.click("[data-compare-button]")
    page.wait_for_url(f"{live_server.url}/compare/?*")
    wait_for_draw(page, 1)
    test_bars = StockPrediction.objects.filter(session=first, time__gte=first.test_start).count()
    assert trace_points(page, "chart-forecasts") == {
        "Actual close": test_bars,
        "A · LSTM W 48 ahead 3": test_bars,  # the leaderboard's order: newest first on a tie
        "B · LSTM W 12 ahead 3": test_bars,
    }
    assert len(trace_points(page, "chart-equity")) == 4
    differs = page.eval_on_selector_all(
        "#compare-table tr[data-differs] th", "ths => ths.map(th => th.textContent.trim())"
    )
    assert "≠ Window" in differs and not any("Symbol" in text for text in differs)
    no_overflow(page)
    shoot(page, "compare")
    assert page.console_errors == []


def test_download_links_answer_csv(page, live_server, bars):
    session = make_session(TrainingSession.Kind.PRODUCTION)
    open_page(page, f"{live_server.url}/")
    link = page.get_attribute("[data-downloads] a", "href")
    assert link == "/download/bars.csv?symbol=BTCUSD&start=2020-07-08&end=2020-07-14"
    response = page.request.get(f"{live_server.url}{link}")
    assert response.status == 200
    assert response.headers["content-disposition"].endswith('"BTCUSD_1h_2020-07-08_2020-07-14.csv"')
    assert len(response.text().splitlines()) == 1 + 7 * 24
    open_page(page, f"{live_server.url}/forecast/")
    for name, rows in (("predictions", session.predictions.count()), ("scores", None)):
        href = page.get_attribute(f"[data-downloads] a:has-text('{name}')", "href")
        assert href == f"/download/{name}.csv?session={session.id}"
        answer = page.request.get(f"{live_server.url}{href}")
        assert answer.status == 200 and answer.headers["content-type"] == "text/csv"
        if rows is not None:
            assert len(answer.text().splitlines()) == 1 + rows
    assert page.console_errors == []


def test_no_page_scrolls_sideways(page, live_server, bars):
    first = _evaluated(12, 0)
    second = _evaluated(48, 5)
    make_session(TrainingSession.Kind.PRODUCTION, created_offset=9)
    charted = (
        "/",
        "/?symbol=BTCUSD&start=1900-01-01&end=2999-12-31&style=candles",
        "/forecast/",
        "/forecast/?start=2020-06-01&end=2020-06-03",
        "/evaluation/",
        f"/compare/?session={first.id}&session={second.id}",
    )
    for url in charted:
        open_page(page, f"{live_server.url}{url}")
        no_overflow(page)
    for url, status in (
        ("/compare/", 200),
        (f"/compare/?session={first.id}", 400),
        ("/compare/?session=zzz&session=yyy", 404),
        ("/jobs/", 200),
        ("/accounts/login/", 200),
    ):
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == status, url
        no_overflow(page)
    shoot(page, "compare-picker-refused")
    # The refused pages are answered 400/404 on purpose: the browser logs those alone.
    assert all("status of 40" in error for error in page.console_errors), page.console_errors


def test_empty_pages_say_why_and_follow_the_first_run_demo(page, live_server, bars):
    """Before anything is trained the session pages say what will fill them: with the
    demo queued, its progress (and they reload themselves); without, the command to run."""
    from predictor.models import Job
    from predictor.services.jobs import start_parent

    for path, text in (
        ("/forecast/", "No production sessions yet"),
        ("/evaluation/", "No evaluation sessions yet"),
        ("/compare/", "No finished sessions or backtests yet"),
    ):
        assert page.goto(f"{live_server.url}{path}").status == 200
        assert text in page.inner_text("main"), path
        assert page.query_selector("[data-pending]") is None
        no_overflow(page)
    demo = start_parent(Job.Kind.SWEEP, {"demo": True}, label="first-run demo: 4 sessions")
    Job.objects.filter(pk=demo.pk).update(progress={"done": 2, "total": 5})
    for path in ("/forecast/", "/evaluation/"):
        assert page.goto(f"{live_server.url}{path}").status == 200
        pending = page.inner_text("[data-pending]")
        assert "1 job queued or running" in pending and "(2 of 5 parts done)" in pending
        assert page.get_attribute("meta[http-equiv=refresh]", "content") == "10"
        no_overflow(page)
    shoot(page, "evaluation-demo-pending")
    assert "./manage.py jobs" in pending and "once signed in" in pending
    # A signed-in visitor follows the link to the demo's job.
    from django.contrib.auth.models import User

    User.objects.create_user("viewer", password="a-long-viewer-password")
    page.goto(f"{live_server.url}/accounts/login/?next=/evaluation/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", "a-long-viewer-password")
    page.click("[type=submit]")
    page.wait_for_url(f"{live_server.url}/evaluation/")
    page.click("[data-pending] a:has-text('Jobs')")
    page.wait_for_url(f"{live_server.url}/jobs/")
    assert "first-run demo" in page.inner_text("main")
    no_overflow(page)
    assert page.console_errors == []
