/* Crypto Oracle: draw the page's Plotly figures and redraw them when the selection changes.
 *
 * The page embeds its first payload (figures as plotly JSON, the empty-state message, the
 * form's values); changing a field fetches the same payload from the form's JSON endpoint
 * and redraws in place, so no selection costs a full reload. Plain DOM, no framework.
 */
(function () {
  "use strict";

  var form = document.querySelector("form[data-endpoint]");
  var payloadNode = document.getElementById("chart-payload");
  var plotConfig = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  var draws = 0;
  var pending = null;

  function draw(payload) {
    document.querySelectorAll("[data-figure]").forEach(function (node) {
      var figure = payload.figures[node.dataset.figure];
      if (figure) {
        node.hidden = false;
        Plotly.react(node, figure.data, figure.layout, plotConfig);
      } else {
        Plotly.purge(node);
        node.hidden = true;
      }
    });
    var empty = document.querySelector("[data-empty]");
    if (empty) {
      empty.textContent = payload.empty || "";
      empty.hidden = !payload.empty;
    }
    var details = document.querySelector("[data-details]");
    if (details && typeof payload.html === "string") details.innerHTML = payload.html;
    if (form && payload.values) {
      Object.keys(payload.values).forEach(function (name) {
        var field = form.elements[name];
        if (field && payload.values[name] !== null) field.value = payload.values[name];
      });
    }
    if (form && payload.limits) {
      Object.keys(payload.limits).forEach(function (name) {
        var field = form.elements[name];
        if (!field) return;
        ["min", "max"].forEach(function (key) {
          if (payload.limits[name][key]) field.setAttribute(key, payload.limits[name][key]);
          else field.removeAttribute(key);
        });
      });
    }
    markLeaderboard();
    draws += 1;
    document.body.dataset.draws = String(draws);
  }

  function showErrors(messages) {
    var box = form.querySelector("[data-errors]");
    box.innerHTML = "";
    messages.forEach(function (text) {
      var p = document.createElement("p");
      p.textContent = text;
      box.appendChild(p);
    });
    box.hidden = messages.length === 0;
  }

  function setStatus(text) {
    var status = form.querySelector("[data-status]");
    if (status) status.textContent = text;
  }

  function update() {
    var query = new URLSearchParams(new FormData(form)).toString();
    if (pending) pending.abort();
    pending = new AbortController();
    setStatus("Loading…");
    fetch(form.dataset.endpoint + "?" + query, {
      headers: { Accept: "application/json" },
      signal: pending.signal,
    })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (result) {
        setStatus("");
        if (!result.ok) {
          showErrors([result.body.error || "That selection cannot be shown."]);
          return;
        }
        showErrors([]);
        draw(result.body);
        history.replaceState(null, "", "?" + new URLSearchParams(new FormData(form)).toString());
      })
      .catch(function (error) {
        if (error.name === "AbortError") return;
        setStatus("");
        showErrors(["Could not load the chart: " + error.message]);
      });
  }

  function markLeaderboard() {
    if (!form || !form.elements.session) return;
    document.querySelectorAll("#leaderboard tbody tr").forEach(function (row) {
      if (row.dataset.session === form.elements.session.value) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
  }

  function sortable(table) {
    var headers = table.querySelectorAll("th[data-sort]");
    headers.forEach(function (th) {
      var column = th.cellIndex; // unsorted columns (the compare ticks) may come before
      th.tabIndex = 0;
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        var numeric = th.dataset.sort === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a.cells[column]);
          var y = cellValue(b.cells[column]);
          if (x === "" || y === "") return x === y ? 0 : x === "" ? 1 : -1; // blanks last
          var order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
    table.addEventListener("click", function (event) {
      if (event.target.closest("input, label, a.compare-link")) return; // compare checkboxes
      var row = event.target.closest("tr[data-session]");
      if (!row || !form || !form.elements.session) return;
      event.preventDefault();
      form.elements.session.value = row.dataset.session;
      update();
      form.scrollIntoView({ behavior: "smooth", block: "start" });
    });
  }

  function cellValue(cell) {
    return cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
  }

  if (form) {
    form.addEventListener("change", function (event) {
      if (event.target.dataset.resets) {
        // A new symbol or session: let the server choose its default range.
        ["start", "end"].forEach(function (name) {
          if (form.elements[name]) form.elements[name].value = "";
        });
      }
      update();
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      update();
    });
  }
  document.querySelectorAll("table.sortable").forEach(sortable);

  /* Compare: the "Compare selected" button counts the ticked sessions and backtests and
   * says why it is disabled; the page itself is a plain GET form, no script needed. */
  var compare = document.getElementById("compare-picks");
  function countPicks() {
    var ticked = document.querySelectorAll("input[form=compare-picks]:checked").length;
    var button = document.querySelector("[data-compare-button]");
    var hint = document.querySelector("[data-compare-hint]");
    if (!button) return;
    button.disabled = ticked < 2 || ticked > 4;
    if (hint) hint.textContent = ticked + " picked" + (ticked < 2 ? ": pick 2 to 4" : ticked > 4 ? ": at most 4" : "");
  }
  if (compare) {
    document.addEventListener("change", function (event) {
      if (event.target.matches("input[form=compare-picks]")) countPicks();
    });
    countPicks();
  }
  if (payloadNode) draw(JSON.parse(payloadNode.textContent));

  /* Jobs: a job's page (and the jobs list) asks its JSON twin for the job's state every
   * POLL_MS while the job is queued or running, and redraws the details and the loss curve
   * in place; it stops once the payload says nothing is active any more. */
  var POLL_MS = 2000;
  var polled = document.querySelector("[data-poll]");

  function poll() {
    fetch(polled.dataset.poll, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 404 || response.status === 403) return null;
        return response.json();
      })
      .then(function (body) {
        if (!body) return;
        draw(body);
        polled.dataset.active = body.active ? "true" : "false";
        if (body.status) polled.dataset.status = body.status;
        if (body.active) setTimeout(poll, POLL_MS);
      })
      .catch(function () {
        setTimeout(poll, POLL_MS * 2); // a restarting server: try again, a little later
      });
  }

  if (polled && polled.dataset.active === "true") setTimeout(poll, POLL_MS);

  /* The launch form shows the backtest's and the sweep's fields only when they apply. */
  var launch = document.querySelector("form.launch");
  function showChosenFields() {
    var chosen = launch.querySelector("input[name=what]:checked");
    launch.querySelectorAll("[data-show-for]").forEach(function (node) {
      node.hidden = !chosen || node.dataset.showFor.split(" ").indexOf(chosen.value) < 0;
    });
  }
  if (launch) {
    launch.addEventListener("change", showChosenFields);
    showChosenFields();
  }
})();
