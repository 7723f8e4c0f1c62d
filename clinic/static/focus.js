// A form that comes back with problems starts at its error summary: a screen reader reads the
// problems first, and the summary's links lead to the fields. (The summary has tabindex="-1".)
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
