// Case-keeper Dashboard: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Ask before destructive actions (delete an endpoint, rotate its secret).
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      ev.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    // After a refused save, put the keyboard focus on the first field with an error.
    var invalid = document.querySelector("[aria-invalid=true]");
    if (invalid) {
      invalid.focus();
    }

    // The jq program matters only with the jq payload format: dim it otherwise, but keep it in the form.
    var jq = document.getElementById("jq-field");
    var radios = document.querySelectorAll("input[name=payload_format]");
    function sync() {
      var chosen = document.querySelector("input[name=payload_format]:checked");
      if (jq) {
        jq.classList.toggle("inactive", !chosen || chosen.value !== "jq");
      }
    }
    radios.forEach(function (r) { r.addEventListener("change", sync); });
    sync();
  });
})();
