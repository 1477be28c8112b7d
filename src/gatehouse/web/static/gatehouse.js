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
  // A form posted after its session ended: the server kept what was typed (never passwords)
  // and puts it back here, once the same user has signed in again.
  var draft = document.getElementById("form-draft");
  if (draft) {
    var fields = JSON.parse(draft.textContent);
    var names = {};
    fields.forEach(function (pair) { (names[pair[0]] = names[pair[0]] || []).push(pair[1]); });
    var target = null;
    document.querySelectorAll("main form").forEach(function (form) {
      if (target) return;
      for (var name in names) { if (form.elements[name]) { target = form; return; } }
    });
    if (target) {
      Array.prototype.forEach.call(target.elements, function (el) {
        if (!el.name || el.type === "hidden" || !(el.name in names)) return;
        var values = names[el.name];
        if (el.type === "checkbox" || el.type === "radio") {
          el.checked = values.indexOf(el.value) >= 0;
          el.dispatchEvent(new Event("change"));
        } else if (el.tagName === "SELECT" && el.multiple) {
          Array.prototype.forEach.call(el.options, function (o) { o.selected = values.indexOf(o.value) >= 0; });
        } else if (el.type !== "password" && el.type !== "file") {
          el.value = values.shift();
        }
      });
    }
  }
  // After a refused form, put the keyboard on the first field that needs attention.
  var invalid = document.querySelector("main [aria-invalid='true']");
  if (invalid) invalid.focus();
});
