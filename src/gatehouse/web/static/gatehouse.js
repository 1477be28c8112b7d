// Gatehouse console: small progressive enhancements (every page works without them).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // <div data-reveal-when="local_admin">: shown only while that checkbox is ticked.
  document.querySelectorAll("[data-reveal-when]").forEach(function (block) {
    var box = document.getElementById(block.getAttribute("data-reveal-when"));
    if (!box) return;
    var sync = function () { block.hidden = !box.checked; };
    box.addEventListener("change", sync);
    sync();
  });
  // After a refused form, put the keyboard on the first field that needs attention.
  var invalid = document.querySelector("main [aria-invalid='true']");
  if (invalid) invalid.focus();
});
