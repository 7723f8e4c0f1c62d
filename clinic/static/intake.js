// Shows and hides the intake's conditional questions as answers change on the same page.
// The server applies the same conditions when the step is saved; this only tidies the page.
(function () {
  "use strict";
  var form = document.querySelector("form.intake-form");
  if (!form) { return; }

  var context = JSON.parse(form.getAttribute("data-context") || "{}");

  function valueOf(name) {
    var inputs = form.querySelectorAll("[name='" + name + "']");
    if (!inputs.length) { return name in context ? context[name] : undefined; }
    var first = inputs[0];
    if (first.type === "checkbox") {
      var list = [];
      inputs.forEach(function (i) { if (i.checked) { list.push(i.value); } });
      return list;
    }
    if (first.type === "radio") {
      var chosen = null;
      inputs.forEach(function (i) { if (i.checked) { chosen = i.value; } });
      if (chosen === "yes") { return true; }
      if (chosen === "no") { return false; }
      return chosen;
    }
    return first.value === "" ? null : first.value;
  }

  function present(v) { return !(v === null || v === undefined || v === "" || (Array.isArray(v) && !v.length)); }

  function holds(p) {
    if (p.all) { return p.all.every(holds); }
    if (p.any) { return p.any.some(holds); }
    if (p.not) { return !holds(p.not); }
    var v = valueOf(p.field);
    if (v === undefined) { return true; } // answered on another step: the server decided
    if ("present" in p) { return present(v) === p.present; }
    if (!present(v)) { return false; }
    if ("eq" in p) { return v === p.eq; }
    if ("ne" in p) { return v !== p.ne; }
    if ("in" in p) { return p["in"].indexOf(v) >= 0; }
    if ("not_in" in p) { return p.not_in.indexOf(v) < 0; }
    if ("contains" in p) { return Array.isArray(v) && v.indexOf(p.contains) >= 0; }
    return true;
  }

  var groups = form.querySelectorAll("[data-show-when]");
  function update() {
    groups.forEach(function (g) {
      g.hidden = !holds(JSON.parse(g.getAttribute("data-show-when")));
    });
  }
  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
})();
