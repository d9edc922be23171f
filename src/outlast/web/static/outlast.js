// outlast dashboard: refreshes the live numbers and files problem reports. No libraries.
(function () {
  "use strict";
  function pct(x) { return (100 * x).toFixed(1) + "%"; }
  function set(id, text) { var el = document.getElementById(id); if (el) { el.textContent = text; } }

  function refresh() {
    fetch("/outlast/v1/health", { headers: { "x-outlast-ui": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var live = data.live;
        set("req-rate", live.requests_per_minute.toFixed(0) + "/min");
        set("err-rate", pct(live.error_rate));
        set("failovers", String(live.failovers));
        set("requests-total", String(live.requests_total));
        set("open-incidents", String(data.incidents.filter(function (i) { return i.status !== "resolved"; }).length));
        (data.components || []).forEach(function (c) {
          var cell = document.querySelector('[data-component-status="' + c.component + '"]');
          if (cell) { cell.textContent = c.status.replace(/_/g, " "); cell.className = "status-" + c.status; }
        });
        var list = document.getElementById("live-incidents");
        if (list) {
          list.textContent = "";
          data.incidents.filter(function (i) { return i.status !== "resolved"; }).forEach(function (i) {
            var li = document.createElement("li");
            var a = document.createElement("a");
            a.href = "/ui/incidents/" + encodeURIComponent(i.id);
            a.textContent = i.title + " (" + i.status + ")";
            li.appendChild(a);
            list.appendChild(li);
          });
          if (!list.children.length) { var none = document.createElement("li"); none.textContent = "None open"; list.appendChild(none); }
        }
      })
      .catch(function () { /* the gateway is restarting; try again on the next tick */ });
  }

  var form = document.getElementById("report-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = { component: form.elements.component.value, note: form.elements.note.value };
      // The session's CSRF token, from the form's hidden field (without the script the form posts it).
      var token = form.elements.csrf ? form.elements.csrf.value : "";
      fetch("/outlast/v1/reports", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-outlast-ui": "1", "x-outlast-csrf": token },
        body: JSON.stringify(body)
      }).then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
        .then(function (result) {
          set("report-result", result[0] === 201 ? "Report filed for " + result[1].component + ". Thank you."
                                                 : "Not filed: " + (result[1].error || result[0]));
          if (result[0] === 201) { form.elements.note.value = ""; }
        });
    });
  }
  if (document.getElementById("req-rate")) { refresh(); setInterval(refresh, 2000); }
})();
