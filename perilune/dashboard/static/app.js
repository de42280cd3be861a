// perilune dashboard: progressive enhancement only; every page works without it.
(function () {
  "use strict";
  // selects marked data-autosubmit submit their form on change
  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { if (el.form) el.form.submit(); });
  });
  // forms marked data-confirm ask first
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
    });
  });
  // copy buttons: data-copy="<input id>"
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var input = document.getElementById(b.getAttribute("data-copy"));
      if (!input) return;
      input.select();
      var done = function () { b.textContent = "Copied"; };
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, function () {});
      else { document.execCommand("copy"); done(); }
    });
  });
  // <time datetime> in the reader's own time zone, named, the UTC text kept as a tooltip
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (isNaN(d)) return;
    t.title = t.textContent;
    t.textContent = d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit",
      minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short" });
  });
  // filter panels start closed on narrow screens unless a filter is set
  document.querySelectorAll("details[data-collapse-narrow]").forEach(function (d) {
    var active = Array.prototype.some.call(d.querySelectorAll("input, select"), function (el) {
      return el.name && el.value && el.type !== "hidden";
    });
    if (window.matchMedia("(max-width: 640px)").matches && !active) d.open = false;
  });
})();
